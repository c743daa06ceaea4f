"""config.json parsing and loading (firmware.flash.config) under CPython."""
import json

import pytest

from firmware.flash import config

MINIMAL = {"hub": "3f2d1c3e-6a51-4d1e-9b55-1a2b3c4d5e6f", "serial": "70010042"}
INT_KEYS = sorted(k for k, v in config.DEFAULTS.items()
                  if isinstance(v, int) and not isinstance(v, bool))
BOOL_KEYS = sorted(k for k, v in config.DEFAULTS.items() if isinstance(v, bool))
# Ids and names; the cloud's strings are longer or optional (tested below).
STR_KEYS = sorted(k for k, v in config.DEFAULTS.items()
                  if isinstance(v, str) and k not in config.LONG)


def parse(obj):
    return config.parse(json.dumps(obj))


def error_of(obj_or_text):
    text = obj_or_text if isinstance(obj_or_text, str) else json.dumps(obj_or_text)
    with pytest.raises(config.ConfigError) as info:
        config.parse(text)
    return str(info.value)


def with_(**kw):
    obj = dict(MINIMAL)
    obj.update(kw)
    return obj


# ---------------------------------------------------------------- parse()


def test_defaults_applied():
    cfg = parse(MINIMAL)
    assert cfg["hub"] == MINIMAL["hub"] and cfg["serial"] == "70010042"
    # the ports clients use (API-NOTES: wss://<ip>:17000, plain ws on 17001)
    assert cfg["wss_port"] == 17000 and cfg["ws_port"] == 17001
    assert cfg["host"] == "0.0.0.0"
    assert cfg["max_tokens_per_user"] == 16
    for key, value in config.DEFAULTS.items():
        assert cfg[key] == value


def test_given_values_override_defaults():
    cfg = parse(with_(wss_port=443, host="127.0.0.1", model="esp32-s3", login_delay_ms=1))
    assert cfg["wss_port"] == 443 and cfg["host"] == "127.0.0.1"
    assert cfg["model"] == "esp32-s3" and cfg["login_delay_ms"] == 1
    assert cfg["ws_port"] == 17001  # untouched keys keep their default


def test_parse_does_not_modify_defaults():
    before = dict(config.DEFAULTS)
    parse(with_(wss_port=1))
    assert config.DEFAULTS == before


def test_unknown_keys_are_ignored():
    cfg = parse(with_(colour=[1, 2], wss_prot="oops", nested={"a": None}, wlan=None))
    assert cfg["wss_port"] == 17000 and cfg["hub"] == MINIMAL["hub"]


@pytest.mark.parametrize("key", ["hub", "serial"])
def test_missing_required_key_is_named(key):
    obj = dict(MINIMAL)
    del obj[key]
    msg = error_of(obj)
    assert "'%s'" % key in msg and "missing" in msg


def test_empty_object_names_a_required_key():
    msg = error_of({})
    assert "'hub'" in msg or "'serial'" in msg


@pytest.mark.parametrize("key", ["hub", "serial"])
@pytest.mark.parametrize("value", [70010042, None, "", "x" * 65, ["a"], True])
def test_required_key_of_wrong_type_is_named(key, value):
    msg = error_of(with_(**{key: value}))
    assert "'%s'" % key in msg


def test_required_string_length_boundary():
    assert parse(with_(serial="9" * 64))["serial"] == "9" * 64


@pytest.mark.parametrize("key", INT_KEYS)
@pytest.mark.parametrize("value", ["17000", 17000.0, None, [1], {"v": 1}, 0, -1])
def test_int_key_of_wrong_type_is_named(key, value):
    if value == 0 and key in config.ZERO_OK:
        assert parse(with_(**{key: 0}))[key] == 0
        return
    msg = error_of(with_(**{key: value}))
    assert "'%s'" % key in msg
    assert "integer" in msg


def test_max_peer_links_zero_turns_outgoing_links_off_but_not_negative():
    assert parse(with_(max_peer_links=0))["max_peer_links"] == 0
    assert "non-negative integer" in error_of(with_(max_peer_links=-1))


PEER = "0b5f3c2e-1111-4d1e-9b55-1a2b3c4d5e6f"


def test_peer_urls_default_empty_and_accepted():
    assert parse(MINIMAL)["peer_urls"] == {}
    urls = {PEER: "wss://192.168.1.20:17000", "other": "wss://HUB1.local:17000/"}
    assert parse(with_(peer_urls=urls))["peer_urls"] == urls


@pytest.mark.parametrize("urls", [
    [], "wss://x:1", {PEER: "ws://10.0.0.1:17001"}, {PEER: "https://x"}, {PEER: 5},
    {PEER: "wss://"}, {PEER: "wss://" + "h" * 251}, {"": "wss://x:1"}, {"u" * 65: "wss://x:1"},
    {"p%d" % i: "wss://x:1" for i in range(33)},
])
def test_bad_peer_urls_are_named(urls):
    assert "'peer_urls'" in error_of(with_(peer_urls=urls))


def test_peer_max_message_is_capped_like_the_clouds():
    assert parse(with_(peer_max_message=config.CLOUD_MESSAGE_MAX))
    assert "'peer_max_message' must be at most" in error_of(
        with_(peer_max_message=config.CLOUD_MESSAGE_MAX + 1))


@pytest.mark.parametrize("key", INT_KEYS)
@pytest.mark.parametrize("value", [True, False])
def test_bool_is_not_accepted_as_int(key, value):
    assert "'%s'" % key in error_of(with_(**{key: value}))


@pytest.mark.parametrize("key", STR_KEYS)
@pytest.mark.parametrize("value", [5, None, True, "", "h" * 65, ["0.0.0.0"]])
def test_string_key_of_wrong_type_is_named(key, value):
    msg = error_of(with_(**{key: value}))
    assert "'%s'" % key in msg
    assert "string" in msg


def test_wss_port_message_exactly():
    assert error_of(with_(wss_port="17000")) == "config.json: 'wss_port' must be a positive integer"


def test_only_the_bad_key_is_named():
    msg = error_of(with_(ping_interval="20"))
    assert "'ping_interval'" in msg
    assert "'wss_port'" not in msg and "'hub'" not in msg


@pytest.mark.parametrize("text", ["[]", '[{"hub": "h", "serial": "1"}]', "5", '"hub"', "null",
                                  "true"])
def test_non_object_is_refused(text):
    assert error_of(text) == "config.json: must hold a JSON object"


@pytest.mark.parametrize("text", ["", "{", "hub=1", "{'hub': 'h', 'serial': '1'}",
                                  '{"hub": "h", "serial": "1",}'])
def test_invalid_json_is_refused(text):
    assert error_of(text) == "config.json: not valid JSON"


# ---------------------------------------------------------------- load()


def test_load_reads_a_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps(with_(wss_port=18000)))
    cfg = config.load(str(path))
    assert cfg["wss_port"] == 18000 and cfg["serial"] == "70010042"


def test_load_missing_file(tmp_path):
    path = str(tmp_path / "nope" / "config.json")
    with pytest.raises(config.ConfigError) as info:
        config.load(path)
    assert str(info.value) == "config.json: cannot read %s" % path


def test_load_directory_is_cannot_read(tmp_path):
    with pytest.raises(config.ConfigError) as info:
        config.load(str(tmp_path))
    assert "cannot read" in str(info.value)


def padded(size):
    text = json.dumps(MINIMAL)
    return text + " " * (size - len(text))


def test_load_file_of_exactly_the_limit(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(padded(config.CONFIG_MAX))
    assert path.stat().st_size == 8192
    assert config.load(str(path))["hub"] == MINIMAL["hub"]


def test_load_oversized_file(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(padded(config.CONFIG_MAX + 1))
    assert path.stat().st_size == 8193
    with pytest.raises(config.ConfigError) as info:
        config.load(str(path))
    assert str(info.value) == "config.json: larger than 8192 bytes"


def test_load_propagates_parse_errors(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"hub": "h"}))
    with pytest.raises(config.ConfigError) as info:
        config.load(str(path))
    assert "'serial'" in str(info.value)


def test_load_non_utf8_file_is_a_config_error(tmp_path):
    path = tmp_path / "config.json"
    path.write_bytes(b'{"hub": "\xff\xfe", "serial": "1"}')
    with pytest.raises(config.ConfigError):
        config.load(str(path))


@pytest.mark.parametrize("key", BOOL_KEYS)
@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_bool_key_of_wrong_type_is_named(key, value):
    assert "'%s'" % key in error_of(with_(**{key: value}))


@pytest.mark.parametrize("key", sorted(config.LONG))
@pytest.mark.parametrize("value", [5, None, "h" * 257])
def test_long_string_key_of_wrong_type_is_named(key, value):
    assert "'%s'" % key in error_of(with_(**{key: value}))


def test_cloud_url_must_be_wss_and_needs_a_token():
    assert "'cloud_url'" in error_of(with_(cloud_url="ws://x:1/", cloud_token="t"))
    assert "'cloud_token'" in error_of(with_(cloud_url="wss://x:1/"))
    cfg = parse(with_(cloud_url="wss://x:1/", cloud_token="t"))
    assert cfg["cloud_verify"] is True and cfg["cloud_ca"] == "cloud-ca.pem"


@pytest.mark.parametrize("key", sorted(config.TIMES))
def test_times_are_bounded_to_a_day(key):
    assert parse(with_(**{key: 86400}))[key] == 86400
    assert "'%s'" % key in error_of(with_(**{key: 86401}))


def test_cloud_message_is_bounded_by_what_start_up_reads():
    assert "'cloud_max_message'" in error_of(with_(cloud_max_message=config.CLOUD_MESSAGE_MAX + 1))


# ---------------------------------------------------------------- wifi


@pytest.mark.parametrize("wifi", [None, {}, {"ssid": ""}, {"ssid": "", "password": "secret-pw"}])
def test_wifi_absent_or_without_ssid_means_no_wifi_set_up(wifi):
    obj = with_() if wifi is None else with_(wifi=wifi)
    assert parse(obj)["wifi"] is None


def test_wifi_is_normalised_to_ssid_and_password():
    cfg = parse(with_(wifi={"ssid": "lab", "password": "12345678", "band": "2.4"}))
    assert cfg["wifi"] == {"ssid": "lab", "password": "12345678"}
    # an open network: no password
    assert parse(with_(wifi={"ssid": "café"}))["wifi"] == {"ssid": "café", "password": ""}


def test_wifi_lengths_are_counted_in_bytes():
    assert parse(with_(wifi={"ssid": "s" * 32}))["wifi"]["ssid"] == "s" * 32
    assert parse(with_(wifi={"ssid": "é" * 16}))["wifi"]["ssid"] == "é" * 16  # 32 bytes
    assert error_of(with_(wifi={"ssid": "é" * 17})) == \
        "config.json: 'wifi.ssid' must be a string of at most 32 bytes"
    assert "'wifi.ssid'" in error_of(with_(wifi={"ssid": "s" * 33}))
    assert parse(with_(wifi={"ssid": "x", "password": "p" * 64}))["wifi"]["password"] == "p" * 64
    assert error_of(with_(wifi={"ssid": "x", "password": "p" * 65})) == \
        "config.json: 'wifi.password' must be a string of at most 64 bytes"


@pytest.mark.parametrize("wifi", [None, "lab", ["lab", "pw"], 1, True])
def test_wifi_must_be_an_object(wifi):
    assert error_of(with_(wifi=wifi)).startswith("config.json: 'wifi' must be an object")


@pytest.mark.parametrize("key", ["ssid", "password"])
@pytest.mark.parametrize("value", [5, None, True, ["x"], {"x": 1}])
def test_wifi_field_of_wrong_type_is_named(key, value):
    wifi = {"ssid": "lab", "password": "12345678"}
    wifi[key] = value
    assert "'wifi.%s'" % key in error_of(with_(wifi=wifi))


def test_wifi_errors_never_quote_the_password():
    for wifi in ({"ssid": 5, "password": "hunter2-secret"},
                 {"ssid": "lab", "password": "hunter2-secret" * 5}):
        assert "hunter2" not in error_of(with_(wifi=wifi))
