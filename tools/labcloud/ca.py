"""The lab CA: its own certificate, the cloud's server certificate and the
controllers' certificate sets, all as PEM text (what the database and the
sync reply carry)."""
import datetime
import ipaddress

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
LEAF_DAYS = 825  # the longest validity clients accept for a server cert


def new_key(kind):
    """RSA-2048 (the default: old clients need RSA key exchange) or P-256."""
    if kind == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def key_pem(key):
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def load_cert(pem):
    return x509.load_pem_x509_certificate(pem.encode())


def load_key(pem):
    return serialization.load_pem_private_key(pem.encode(), password=None)


def _name(cn):
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _builder(subject, issuer, public, days):
    now = datetime.datetime.now(datetime.timezone.utc)
    return (x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))  # clock skew
            .not_valid_after(now + datetime.timedelta(days=days))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False))


def make_ca(kind="rsa", cn="ezlo-peer lab CA"):
    """A new CA: (certificate PEM, PKCS#8 key PEM)."""
    key = new_key(kind)
    cert = (_builder(_name(cn), _name(cn), key.public_key(), CA_DAYS)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(
                digital_signature=False, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=True,
                crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return cert_pem(cert), key_pem(key)


def san_entry(host):
    """An IP address SAN when HOST is one, else a DNS name."""
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def issue(ca, cn, hosts, kind="rsa", client=False):
    """A leaf for the names in HOSTS signed by CA, a (cert PEM, key PEM) pair;
    returns the leaf's pair. CLIENT adds the clientAuth purpose."""
    ca_cert, ca_key = load_cert(ca[0]), load_key(ca[1])
    key = new_key(kind)
    sans = []
    for host in hosts:
        entry = san_entry(host)
        if entry not in sans:
            sans.append(entry)
    purposes = [ExtendedKeyUsageOID.SERVER_AUTH] + ([ExtendedKeyUsageOID.CLIENT_AUTH] if client else [])
    rsa_key = kind != "ec"
    cert = (_builder(_name(cn), ca_cert.subject, key.public_key(), LEAF_DAYS)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            # RSA key exchange (AES256-SHA256, API-NOTES) needs keyEncipherment.
            .add_extension(x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=rsa_key,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage(purposes), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return cert_pem(cert), key_pem(key)


def server_cert(ca, host, kind="rsa"):
    """The cloud's own certificate: HOST plus localhost and 127.0.0.1."""
    return issue(ca, host, [host, "localhost", "127.0.0.1"], kind)


def controller_cert(ca, serial, kind="rsa"):
    """A controller's certificate: CN HUB<serial>, for HUB<serial>.local,
    localhost and 127.0.0.1, usable as TLS server and client."""
    name = "HUB" + serial
    return issue(ca, name, [name + ".local", "localhost", "127.0.0.1"], kind, client=True)


def describe(pem):
    """'RSA-2048, valid until 2028-01-01' for listings (no key material)."""
    cert = load_cert(pem)
    public = cert.public_key()
    kind = ("RSA-%d" % public.key_size if isinstance(public, rsa.RSAPublicKey)
            else "EC " + public.curve.name)
    return "%s, valid until %s" % (kind, cert.not_valid_after_utc.date().isoformat())
