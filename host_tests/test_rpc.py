"""The JSON-RPC envelope (firmware.core.rpc) under CPython: parsing requests,
reading parameters, and the exact reply shapes of API-NOTES."""
import json
import os
import re

import pytest

from firmware.core import rpc
from tools.harness.proc import ROOT

NOTFOUND = (-32600, "Bad request", "rpc.params.notfound")
INVALID = (-32602, "Wrong params", "rpc.params.invalid")


def triple(err):
    return err.code, err.message, err.data


def request_error(data):
    with pytest.raises(rpc.RequestError) as info:
        rpc.parse(data)
    return info.value


def rpc_error(*args, **kw):
    with pytest.raises(rpc.RpcError) as info:
        rpc.param(*args, **kw)
    return info.value


# ---------------------------------------------------------------- parse()


@pytest.mark.parametrize("rid", ["0.61673", "1a224834101", "_ID_", 7, 0, 2.5])
def test_parse_returns_id_method_params(rid):
    data = json.dumps({"id": rid, "method": "hub.offline.login.ui",
                       "params": {"user": "u", "token": "t"}, "api": "1.0"})
    assert rpc.parse(data) == (rid, "hub.offline.login.ui", {"user": "u", "token": "t"})


def test_parse_keeps_id_type_string_vs_number():
    sid = rpc.parse('{"id": "5", "method": "m"}')[0]
    nid = rpc.parse('{"id": 5, "method": "m"}')[0]
    assert sid == "5" and isinstance(sid, str)
    assert nid == 5 and isinstance(nid, int)


def test_parse_absent_id_is_none():
    assert rpc.parse('{"method": "hub.info.get", "params": {}}') == (None, "hub.info.get", {})


def test_parse_absent_params_is_empty_object():
    rid, method, params = rpc.parse('{"id": "a", "method": "hub.info.get"}')
    assert (rid, method, params) == ("a", "hub.info.get", {})
    assert isinstance(params, dict)


def test_parse_accepts_bytes():
    assert rpc.parse(b'{"id": 1, "method": "m", "params": {"x": 1}}') == (1, "m", {"x": 1})


@pytest.mark.parametrize("data", [
    "", "{", "not json", '{"id": 1, "method": "m"', "{'id': 1}", b"\xff\xfe",
    '{"id": 1, "method": "m",}',
])
def test_parse_invalid_json_is_parse_error_with_null_id(data):
    e = request_error(data)
    assert e.rid is None and e.method is None
    assert e.err.code == rpc.PARSE_ERROR == -32700
    assert e.err.message == "Parse error"


def test_parse_error_reply_has_null_id_on_the_wire():
    e = request_error("{oops")
    reply = json.loads(rpc.error(e.rid, e.method, e.err))
    assert reply["id"] is None
    assert reply["error"]["code"] == -32700
    assert reply["result"] is None


@pytest.mark.parametrize("data", ["[]", '[{"id": 1, "method": "m"}]', "5", '"hub.info.get"',
                                  "null", "true"])
def test_parse_non_object_request_is_bad_request(data):
    e = request_error(data)
    assert e.rid is None and e.method is None
    assert e.err.code == rpc.BAD_REQUEST == -32600


@pytest.mark.parametrize("method", ["absent", None, 5, ["hub.info.get"], {"n": 1}, True])
def test_parse_method_missing_or_not_a_string_is_bad_request_echoing_id(method):
    req = {"id": "r1", "params": {}}
    if method != "absent":
        req["method"] = method
    e = request_error(json.dumps(req))
    assert e.err.code == -32600
    assert e.rid == "r1"
    assert e.method is None


@pytest.mark.parametrize("params", [[], [1, 2], "x", 5, True, False, 0])
def test_parse_params_not_an_object_is_wrong_params(params):
    e = request_error(json.dumps({"id": 9, "method": "hub.offline.login.ui", "params": params}))
    assert triple(e.err) == INVALID
    assert e.rid == 9 and e.method == "hub.offline.login.ui"


# ---------------------------------------------------------------- param()


def test_param_exact_name():
    assert rpc.param({"user": "abc"}, "user", str) == "abc"


@pytest.mark.parametrize("key", ["User", "USER", "uSeR"])
def test_param_case_insensitive_fallback(key):
    assert rpc.param({key: "abc", "other": 1}, "user", str) == "abc"


def test_param_exact_name_wins_over_other_case_in_either_order():
    assert rpc.param({"User": "upper", "user": "lower"}, "user", str) == "lower"
    assert rpc.param({"user": "lower", "User": "upper"}, "user", str) == "lower"
    assert rpc.param({"user": "lower", "User": "upper"}, "User", str) == "upper"


def test_param_exact_name_wins_even_when_other_case_has_right_type():
    # exact first: the exact key's wrong type is reported, not masked
    assert triple(rpc_error({"enabled": "yes", "Enabled": True}, "enabled", bool)) == INVALID


@pytest.mark.parametrize("params", [{}, {"users": "x"}, {"use": "x"}, {"token": "t"}])
def test_param_missing_is_bad_request_notfound(params):
    assert triple(rpc_error(params, "user", str)) == NOTFOUND


@pytest.mark.parametrize("value, kind", [
    (5, str), (None, str), (["a"], str), ({"a": 1}, str),
    ("5", int), (5.5, int), (None, int),
    ("true", bool), (None, bool), ({}, bool),
])
def test_param_wrong_type_is_wrong_params_invalid(value, kind):
    assert triple(rpc_error({"v": value}, "v", kind)) == INVALID


def test_param_wrong_type_found_case_insensitively_is_invalid_not_notfound():
    assert triple(rpc_error({"Token": 123}, "token", str)) == INVALID


@pytest.mark.parametrize("value", [True, False])
def test_param_bool_is_not_an_int(value):
    assert triple(rpc_error({"version": value}, "version", int)) == INVALID


@pytest.mark.parametrize("value", [0, 1, 2])
def test_param_int_is_not_a_bool(value):
    assert triple(rpc_error({"enabled": value}, "enabled", bool)) == INVALID


def test_param_right_types_pass_through():
    assert rpc.param({"enabled": True}, "enabled", bool) is True
    assert rpc.param({"enabled": False}, "enabled", bool) is False
    got = rpc.param({"version": 0}, "version", int)
    assert got == 0 and type(got) is int
    assert rpc.param({"Version": 42}, "version", int) == 42


def test_param_max_len_boundary():
    assert rpc.param({"user": "x" * 64}, "user", str, 64) == "x" * 64
    assert triple(rpc_error({"user": "x" * 65}, "user", str, 64)) == INVALID


def test_param_max_len_zero_means_unlimited():
    assert rpc.param({"token": "t" * 5000}, "token", str) == "t" * 5000
    assert rpc.param({"token": "t" * 5000}, "token", str, 0) == "t" * 5000


def test_param_empty_string_is_a_value_not_missing():
    assert rpc.param({"token": ""}, "token", str, 256) == ""


# ---------------------------------------------------------------- replies


def test_result_shape_exactly():
    text = rpc.result("0.61673", "hub.info.get", {"serial": "70010042"})
    assert json.loads(text) == {"id": "0.61673", "method": "hub.info.get", "error": None,
                                "result": {"serial": "70010042"}}


def test_result_writes_error_null_literally():
    obj = json.loads(rpc.result(1, "hub.offline.login.ui", {}))
    assert "error" in obj and obj["error"] is None
    assert obj["id"] == 1 and obj["method"] == "hub.offline.login.ui" and obj["result"] == {}


def test_result_with_list_and_null_id():
    assert json.loads(rpc.result(None, "hub.room.list", [])) == {
        "id": None, "method": "hub.room.list", "error": None, "result": []}


def test_error_shape_exactly():
    err = rpc.RpcError(rpc.SERVER_ERROR, "Bad password", "user.login.badpassword")
    assert json.loads(rpc.error("_ID_", "hub.offline.login.ui", err)) == {
        "id": "_ID_", "method": "hub.offline.login.ui",
        "error": {"code": -32500, "message": "Bad password", "data": "user.login.badpassword"},
        "result": None}


def test_error_from_helpers_match_api_notes_codes():
    nf = json.loads(rpc.error(3, "m", rpc.fail("rpc.params.notfound")))
    inv = json.loads(rpc.error(3, "m", rpc.fail("rpc.params.invalid")))
    assert nf["error"] == {"code": -32600, "message": "Bad request", "data": "rpc.params.notfound"}
    assert inv["error"] == {"code": -32602, "message": "Wrong params", "data": "rpc.params.invalid"}
    assert "result" in nf and nf["result"] is None


def test_parse_then_error_round_trip_echoes_id_and_method():
    e = request_error('{"id": "abc", "method": "hub.offline.login.ui", "params": "nope"}')
    assert json.loads(rpc.error(e.rid, e.method, e.err)) == {
        "id": "abc", "method": "hub.offline.login.ui",
        "error": {"code": -32602, "message": "Wrong params", "data": "rpc.params.invalid"},
        "result": None}


@pytest.mark.parametrize("rid", [
    {"a": 1}, [1], "x" * 129, 1 << 60, -(1 << 60), "caf\u00e9",
])
def test_parse_refuses_ids_that_cannot_be_echoed_safely(rid):
    err = request_error(json.dumps({"id": rid, "method": "hub.info.get"}))
    assert err.rid is None and err.method is None
    assert triple(err.err) == (-32600, "Bad request", "rpc.request.invalid")


@pytest.mark.parametrize("text", ['{"id": 1e400, "method": "m"}', '{"id": "\\ud800", "method": "m"}'])
def test_parse_refuses_infinite_and_surrogate_ids(text):
    assert request_error(text).rid is None


@pytest.mark.parametrize("rid", [None, 0, -7, 1 << 53, 2.5, "0.61673", "x" * 128, True])
def test_parse_echoes_plain_ids(rid):
    assert rpc.parse(json.dumps({"id": rid, "method": "m"}))[0] == rid


@pytest.mark.parametrize("method", ["m" * 129, "hub.\\ud800", "h\\u00e9"])
def test_parse_refuses_methods_that_cannot_be_echoed_safely(method):
    err = request_error('{"id": 3, "method": "%s"}' % method)
    assert err.rid == 3 and err.method is None
    assert triple(err.err) == (-32600, "Bad request", "rpc.request.invalid")


def readme_errors():
    """The README's table of errors: {data: (code, message)}."""
    with open(os.path.join(ROOT, "README.md")) as f:
        text = f.read()
    rows = re.findall(r"^\|[^|\n]*\| (-\d+) \| ([^|]+?) \| `([a-z.]+)` \|$", text, re.M)
    return {data: (int(code), message) for code, message, data in rows}


def test_the_error_table_is_the_readmes():
    assert readme_errors() == rpc.ERRORS


def test_every_error_is_made_fresh_with_its_code_and_message():
    for data, (code, message) in rpc.ERRORS.items():
        a, b = rpc.fail(data), rpc.fail(data)
        assert a is not b
        assert (a.code, a.message, a.data) == (code, message, data)
