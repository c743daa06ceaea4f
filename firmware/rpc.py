# JSON-RPC envelope as Ezlo clients expect it: id and method echoed,
# "error": null on success, {code, message, data} with "result": null on error.
import json

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


def not_found():
    return RpcError(BAD_REQUEST, "Bad request", "rpc.params.notfound")


def invalid():
    return RpcError(WRONG_PARAMS, "Wrong params", "rpc.params.invalid")


def method_not_found():
    return RpcError(METHOD_NOT_FOUND, "Method not found", "rpc.method.notfound")


def parse(data):
    # Returns (id, method, params); RequestError carries what to echo back.
    try:
        req = json.loads(data)
    except ValueError:  # a MemoryError is no client's mistake: the caller's
        raise RequestError(None, None, RpcError(PARSE_ERROR, "Parse error", "rpc.parse.error"))
    return check(req)


def check(req):
    # A decoded request -> (id, method, params), as parse() does.
    if not isinstance(req, dict):
        raise RequestError(None, None, RpcError(BAD_REQUEST, "Bad request", "rpc.request.invalid"))
    rid = req.get("id")
    if not _echoable(rid):
        raise RequestError(None, None, RpcError(BAD_REQUEST, "Bad request", "rpc.request.invalid"))
    method = req.get("method")
    if not isinstance(method, str) or not _echoable(method):
        raise RequestError(rid, None, RpcError(BAD_REQUEST, "Bad request", "rpc.request.invalid"))
    params = req.get("params")
    if params is None:
        params = {}
    elif not isinstance(params, dict):
        raise RequestError(rid, method, invalid())
    return rid, method, params


ECHO_MAX = 128


def _echoable(value):
    # id and method are sent back: they must be short, and serialise to valid
    # JSON and valid UTF-8 (MicroPython's json would write inf, or a lone
    # surrogate from "\ud800" as invalid UTF-8).
    if value is None or isinstance(value, bool):
        return True
    if isinstance(value, str):
        try:  # ASCII only; CPython refuses to encode a lone surrogate at all
            return len(value) <= ECHO_MAX and len(value.encode()) == len(value)
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
            raise not_found()
    # bool is an int subclass on both targets: keep the two apart.
    if kind is bool and value is not True and value is not False:
        raise invalid()
    if kind is not bool and (not isinstance(value, kind) or isinstance(value, bool)):
        raise invalid()
    if max_len and len(value) > max_len:
        raise invalid()
    return value


def result(rid, method, res):
    return json.dumps({"id": rid, "method": method, "error": None, "result": res})


def error(rid, method, err):
    body = {"code": err.code, "message": err.message, "data": err.data}
    return json.dumps({"id": rid, "method": method, "error": body, "result": None})
