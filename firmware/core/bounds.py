# Every bound on input, defined once, and the integer check they share.
# Sized for an ESP32 without PSRAM (README, "Limits").
ID_MAX = 64  # a UUID, a serial, an id in the access data, a config string
TOKEN_MAX = 256  # a token; a URL or a secret in config.json
ECHO_MAX = 128  # an id or a method name that a reply sends back
PEERS_MAX = 32  # peers in the access data, and so entries of peer_urls
USERS_MAX = 200
TOKENS_PER_USER_MAX = 16
CERTS_MAX = 4  # certificate sets in the access data
PROBLEMS_MAX = 16  # problems kept per parse: the rest are only counted


def is_int(value):
    # bool is an int subclass on both targets; JSON true is no number.
    return isinstance(value, int) and not isinstance(value, bool)
