# config.json: written by people or tools, read once at start-up. Unknown
# keys are ignored; a missing or invalid key stops start-up naming the key.
import json
import os

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
}

# Seconds; a day at most, so deadlines stay within the board's tick range
# (its ticks wrap after about 12 days).
TIMES = ("handshake_timeout", "login_timeout", "write_timeout", "ping_interval",
         "idle_timeout", "sync_interval", "cloud_backoff_max")
# A synced access.json must fit what start-up reads (app.ACCESS_MAX).
CLOUD_MESSAGE_MAX = 32768

# Keys that may be left empty, and keys that may be longer than an id.
OPTIONAL = ("cloud_url", "cloud_token")
LONG = ("cloud_url", "cloud_token", "cloud_ca")

CONFIG_MAX = 8192


class ConfigError(Exception):
    pass


def _check(cfg, key, kind):
    value = cfg.get(key)
    if kind is bool:
        ok, what = value is True or value is False, "true or false"
    elif kind is int:
        ok = isinstance(value, int) and not isinstance(value, bool) and value > 0
        what = "a positive integer"
    else:
        least = 0 if key in OPTIONAL else 1
        most = 256 if key in LONG else 64
        ok = isinstance(value, str) and least <= len(value) <= most
        what = "a string" if least == 0 else "a non-empty string"
    if not ok:
        raise ConfigError("config.json: '%s' must be %s" % (key, what))


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
    cfg = dict(DEFAULTS)
    cfg.update(given)
    for key in ("hub", "serial"):
        _check(cfg, key, str)
    for key, default in DEFAULTS.items():
        _check(cfg, key, type(default))
    for key in ("wss_port", "ws_port"):
        if cfg[key] > 65535:
            raise ConfigError("config.json: '%s' must be a port number (1-65535)" % key)
    for key in TIMES:
        if cfg[key] > 86400:
            raise ConfigError("config.json: '%s' must be at most 86400 seconds" % key)
    if cfg["cloud_max_message"] > CLOUD_MESSAGE_MAX:
        raise ConfigError("config.json: 'cloud_max_message' must be at most %d" % CLOUD_MESSAGE_MAX)
    if cfg["wss_port"] == cfg["ws_port"]:
        raise ConfigError("config.json: 'ws_port' must differ from 'wss_port'")
    if cfg["cloud_url"]:
        if not cfg["cloud_url"].startswith("wss://"):
            raise ConfigError("config.json: 'cloud_url' must be a wss:// URL")
        if not cfg["cloud_token"]:
            raise ConfigError("config.json: 'cloud_token' is required with 'cloud_url'")
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
