# config.json: written by people or tools, read once at start-up. Unknown
# keys are ignored; a missing or invalid key stops start-up naming the key.
import json
import os

from firmware.core import bounds

# Limits sized for an ESP32 without PSRAM (see README, "Limits").
DEFAULTS = {
    "host": "0.0.0.0",
    "wss_port": 17000,
    "ws_port": 17001,
    "model": "ezlo-peer",
    "max_connections": 2,
    "handshake_timeout": 10,
    "login_timeout": 30,
    "write_timeout": 10,
    "max_message": 1024,
    "ping_interval": 20,
    "idle_timeout": 60,
    "max_failed_logins": 5,
    "login_delay_ms": 250,
    "login_delay_max_ms": 4000,
    "max_tokens_per_user": 16,
    # The cloud link (off while cloud_url is empty).
    "cloud_url": "",
    "cloud_ca": "cloud-ca.pem",
    "cloud_token": "",
    "cloud_verify": True,
    "sync_interval": 3600,
    "cloud_backoff_max": 60,
    "cloud_max_message": 32768,
    # Links to the peers of the access data: {peer UUID: "wss://..."}; a
    # peer without an entry is dialled at wss://HUB<serial>.local:17000.
    "peer_urls": {},
    "max_peer_links": 1,
    "peer_backoff_max": 60,
    "peer_max_message": 4096,
}

# Seconds; a day at most, so deadlines stay within the board's tick range
# (its ticks wrap after about 12 days).
TIMES = ("handshake_timeout", "login_timeout", "write_timeout", "ping_interval",
         "idle_timeout", "sync_interval", "cloud_backoff_max", "peer_backoff_max")
# A synced access.json must fit what start-up reads (datafolder.ACCESS_MAX).
CLOUD_MESSAGE_MAX = 32768

# Numbers that may be 0 (max_peer_links 0: no outgoing peer links).
ZERO_OK = ("max_peer_links",)
# Keys that may be left empty, and keys that may be longer than an id.
OPTIONAL = ("cloud_url", "cloud_token")
LONG = ("cloud_url", "cloud_token", "cloud_ca")

CONFIG_MAX = 8192
# 802.11: an SSID is 1-32 bytes; a WPA passphrase up to 63 characters, or
# a 64-digit hex key.
SSID_MAX = 32
PASSWORD_MAX = 64


class ConfigError(Exception):
    pass


def _check(cfg, key, kind):
    value = cfg.get(key)
    if kind is bool:
        ok, what = value is True or value is False, "true or false"
    elif kind is int:
        least = 0 if key in ZERO_OK else 1
        ok = bounds.is_int(value) and value >= least
        what = "a non-negative integer" if least == 0 else "a positive integer"
    else:
        least = 0 if key in OPTIONAL else 1
        most = bounds.TOKEN_MAX if key in LONG else bounds.ID_MAX
        ok = isinstance(value, str) and least <= len(value) <= most
        what = "a string" if least == 0 else "a non-empty string"
    if not ok:
        raise ConfigError("config.json: '%s' must be %s" % (key, what))


def _check_urls(urls):
    # {peer UUID: wss:// URL}, as many as the access data may name peers.
    ok = isinstance(urls, dict) and len(urls) <= bounds.PEERS_MAX
    for uuid, url in urls.items() if ok else ():
        ok = ok and 0 < len(uuid) <= bounds.ID_MAX and isinstance(url, str)
        ok = ok and 6 < len(url) <= bounds.TOKEN_MAX
        ok = ok and url.startswith("wss://")
    if not ok:
        raise ConfigError("config.json: 'peer_urls' must map peer UUIDs to wss:// URLs (at most %d)"
                          % bounds.PEERS_MAX)


def _wifi(value):
    # {"ssid", "password"} for boot.py to join, or None: no Wi-Fi set-up
    # (the host, or a board connected some other way).
    if not isinstance(value, dict):
        raise ConfigError('config.json: \'wifi\' must be an object {"ssid": ..., "password": ...}')
    wifi = {}
    for key, most in (("ssid", SSID_MAX), ("password", PASSWORD_MAX)):
        text = value.get(key, "")
        if not isinstance(text, str) or len(text.encode()) > most:
            raise ConfigError("config.json: 'wifi.%s' must be a string of at most %d bytes" % (key, most))
        wifi[key] = text
    return wifi if wifi["ssid"] else None


def parse(text):
    try:
        given = json.loads(text)
    except ValueError:
        raise ConfigError("config.json: not valid JSON")
    if not isinstance(given, dict):
        raise ConfigError("config.json: must hold a JSON object")
    for key in ("hub", "serial"):
        if key not in given:
            raise ConfigError("config.json: required key '%s' is missing" % key)
    cfg = dict(DEFAULTS)  # type: dict
    cfg.update(given)
    for key in ("hub", "serial"):
        _check(cfg, key, str)
    for key, default in DEFAULTS.items():
        if not isinstance(default, dict):
            _check(cfg, key, type(default))
    _check_urls(cfg["peer_urls"])
    for key in ("wss_port", "ws_port"):
        if cfg[key] > 65535:
            raise ConfigError("config.json: '%s' must be a port number (1-65535)" % key)
    for key in TIMES:
        if cfg[key] > 86400:
            raise ConfigError("config.json: '%s' must be at most 86400 seconds" % key)
    for key in ("cloud_max_message", "peer_max_message"):
        if cfg[key] > CLOUD_MESSAGE_MAX:
            raise ConfigError("config.json: '%s' must be at most %d" % (key, CLOUD_MESSAGE_MAX))
    if cfg["wss_port"] == cfg["ws_port"]:
        raise ConfigError("config.json: 'ws_port' must differ from 'wss_port'")
    if cfg["cloud_url"]:
        if not cfg["cloud_url"].startswith("wss://"):
            raise ConfigError("config.json: 'cloud_url' must be a wss:// URL")
        if not cfg["cloud_token"]:
            raise ConfigError("config.json: 'cloud_token' is required with 'cloud_url'")
    cfg["wifi"] = _wifi(given.get("wifi", {}))
    return cfg


def load(path):
    try:
        size = os.stat(path)[6]
        if size > CONFIG_MAX:
            raise ConfigError("config.json: larger than %d bytes" % CONFIG_MAX)
        with open(path) as f:
            text = f.read()
    except OSError:
        raise ConfigError("config.json: cannot read %s" % path)
    except UnicodeError:
        raise ConfigError("config.json: not UTF-8 text")
    return parse(text)
