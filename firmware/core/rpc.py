# JSON-RPC envelope as Ezlo clients expect it: id and method echoed,
# "error": null on success, {code, message, data} with "result": null on error.
import json

from firmware.core import bounds

PARSE_ERROR = -32700
BAD_REQUEST = -32600
METHOD_NOT_FOUND = -32601
WRONG_PARAMS = -32602
SERVER_ERROR = -32500


class RpcError(Exception):
    def __init__(self, code, message, data):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data


# Every error this peer answers with, by its data string: (code, message).
# The README's table of errors mirrors it (a test holds the two together).
ERRORS = {
    "rpc.parse.error": (PARSE_ERROR, "Parse error"),
    "rpc.request.invalid": (BAD_REQUEST, "Bad request"),
    "rpc.method.notfound": (METHOD_NOT_FOUND, "Method not found"),
    "rpc.params.notfound": (BAD_REQUEST, "Bad request"),
    "rpc.params.invalid": (WRONG_PARAMS, "Wrong params"),
    "user.login.badpassword": (SERVER_ERROR, "Bad password"),
    "user.login.alreadylogged": (SERVER_ERROR, "Already logged in"),
    "user.login.required": (SERVER_ERROR, "Login required"),
    "hub.storage.failed": (SERVER_ERROR, "Setting not saved"),
    "hub.memory.exhausted": (SERVER_ERROR, "Out of memory"),
    "hub.internal.error": (SERVER_ERROR, "Internal error"),
    "hub.method.notallowed": (SERVER_ERROR, "Not allowed for a controller"),
    "hub.peer.notlinked": (SERVER_ERROR, "Peer not linked"),
    "hub.peer.busy": (SERVER_ERROR, "Peer busy"),
    "hub.peer.timeout": (SERVER_ERROR, "Peer did not answer"),
    "hub.peer.badanswer": (SERVER_ERROR, "Malformed answer from the peer"),
}


def fail(data):
    # A fresh error each time: MicroPython appends to a raised exception's
    # traceback, so a reused instance would grow with every request.
    code, message = ERRORS[data]
    return RpcError(code, message, data)


def parse(data):
    # Returns (id, method, params); RequestError carries what to echo back.
    try:
        req = json.loads(data)
    except ValueError:  # a MemoryError is no client's mistake: the caller's
        raise RequestError(None, None, fail("rpc.parse.error"))
    return check(req)


def check(req):
    # A decoded request -> (id, method, params), as parse() does.
    if not isinstance(req, dict):
        raise RequestError(None, None, fail("rpc.request.invalid"))
    rid = req.get("id")
    if not _echoable(rid):
        raise RequestError(None, None, fail("rpc.request.invalid"))
    method = req.get("method")
    if not isinstance(method, str) or not _echoable(method):
        raise RequestError(rid, None, fail("rpc.request.invalid"))
    params = req.get("params")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        raise RequestError(rid, method, fail("rpc.params.invalid"))
    return rid, method, params




def _echoable(value):
    # id and method are sent back: they must be short, and serialise to valid
    # JSON and valid UTF-8 (MicroPython's json would write inf, or a lone
    # surrogate from "\ud800" as invalid UTF-8).
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, str):
        try:  # ASCII only; CPython refuses to encode a lone surrogate at all
            return len(value) <= bounds.ECHO_MAX and len(value.encode()) == len(value)
        except UnicodeError:
            return False
    if isinstance(value, int):
        return -(1 << 53) <= value <= 1 << 53
    if isinstance(value, float):
        return value - value == 0  # false for inf and nan
    return False


class RequestError(Exception):
    def __init__(self, rid, method, err):
        super().__init__(err.message)
        self.rid = rid
        self.method = method
        self.err = err


def param(params, name, kind, max_len=0):
    # Exact name first, then case-insensitive: the spec's tables and examples
    # disagree on case ("user" vs "User").
    if name in params:
        value = params[name]
    else:
        lname = name.lower()
        for key in params:
            if key.lower() == lname:
                value = params[key]
                break
        else:
            raise fail("rpc.params.notfound")
    if kind is bool and value is not True and value is not False:
        raise fail("rpc.params.invalid")
    if kind is int and not bounds.is_int(value):
        raise fail("rpc.params.invalid")
    if kind is not bool and not isinstance(value, kind):
        raise fail("rpc.params.invalid")
    if max_len and len(value) > max_len:
        raise fail("rpc.params.invalid")
    return value


def result(rid, method, res):
    return json.dumps({"id": rid, "method": method, "error": None, "result": res})


def error(rid, method, err):
    body = {"code": err.code, "message": err.message, "data": err.data}
    return json.dumps({"id": rid, "method": method, "error": body, "result": None})
