"""config.json parsing and loading (firmware.config) under CPython."""
import json

import pytest

from firmware import config

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
    cfg = parse(with_(colour=[1, 2], wss_prot="oops", nested={"a": None}, wifi=None))
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
    msg = error_of(with_(**{key: value}))
    assert "'%s'" % key in msg
    assert "integer" in msg


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
