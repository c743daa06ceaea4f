"""The lab CA: its own certificate, the cloud's server certificate and the
controllers' certificate sets, all as PEM text (what the database and the
sync reply carry). Keys, names and the certificate frame are tools.devdata's,
whose self-signed development certificate is made from the same pieces."""
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import ExtendedKeyUsageOID

from tools.devdata import LEAF_DAYS, alt_names, cert_builder, cert_pem, key_pem, local_names, name, new_key

CA_DAYS = 3650


def load_cert(pem):
    return x509.load_pem_x509_certificate(pem.encode())


def load_key(pem):
    return serialization.load_pem_private_key(pem.encode(), password=None)


def make_ca(kind="rsa", cn="ezlo-peer lab CA"):
    """A new CA: (certificate PEM, PKCS#8 key PEM)."""
    key = new_key(kind)
    cert = (cert_builder(name(cn), name(cn), key.public_key(), CA_DAYS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert_pem(cert), key_pem(key)


def issue(ca, cn, hosts, kind="rsa", client=False):
    """A leaf for the names in HOSTS signed by CA, a (cert PEM, key PEM) pair;
    returns the leaf's pair. CLIENT adds the clientAuth purpose."""
    ca_cert, ca_key = load_cert(ca[0]), load_key(ca[1])
    key = new_key(kind)
    purposes = [ExtendedKeyUsageOID.SERVER_AUTH] + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    rsa_key = kind != "ec"
    cert = (cert_builder(name(cn), ca_cert.subject, key.public_key(), LEAF_DAYS)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # RSA key exchange (AES256-SHA256, API-NOTES) needs keyEncipherment.
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=rsa_key,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
            .add_extension(alt_names(hosts), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert_pem(cert), key_pem(key)


def server_cert(ca, host, kind="rsa"):
    """The cloud's own certificate: HOST plus localhost and 127.0.0.1."""
    return issue(ca, host, [host, "localhost", "127.0.0.1"], kind)


def controller_cert(ca, serial, kind="rsa"):
    """A controller's certificate: CN HUB<serial>, for HUB<serial>.local,
    localhost and 127.0.0.1, usable as TLS server and client."""
    cn = "HUB" + serial
    return issue(ca, cn, local_names(cn), kind, client=True)


def describe(pem):
    """'RSA-2048, valid until 2028-01-01' for listings (no key material)."""
    cert = load_cert(pem)
    public = cert.public_key()
    kind = ("RSA-%d" % public.key_size if isinstance(public, rsa.RSAPublicKey)
            else "EC " + public.curve.name)
    return "%s, valid until %s" % (kind, cert.not_valid_after_utc.date().isoformat())
