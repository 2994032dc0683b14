"""The process inside a lean container that runs a handler.

It loads f(event) from <handler dir>/f.py, dials the worker's Unix socket in the sandbox's
scratch directory (the worker listens, so it learns the sandbox is ready without polling), says
whether the handler loaded, then answers one request per line:

    worker -> sandbox   {"id": <request id>, "event": <any JSON>}
    sandbox -> worker   {"id": <the same id>, "result": <any JSON>}
                      | {"id": <the same id>, "error": "exception" | "bad-result", "type": ..., "message": ..., "traceback": ...}

and, once, right after connecting (no id):

    sandbox -> worker   {"ready": true, "pid": <pid in the sandbox>}
                      | {"fatal": "bad-handler", "type": ..., "message": ..., "traceback": ...}

The id is random, made by the worker for each request. The handler shares this process and
may write to the socket itself; the worker takes a line with another id, a line sent while no
request is outstanding, garbage, or a line longer than its limit as a broken sandbox and
destroys it, so nothing a handler writes can pass for the answer to a later request.

A zygote (zygote.py) imports packages first and forks; each forked child then calls run()
for its own handler.
"""

import _json
import _socket
import faulthandler
import os
import sys

# The runtime's own imports are part of every cold start, so it keeps to C modules that cost
# next to nothing to load: the json package pulls in re and enum, socket.py and traceback more
# (see paper-repro.md, row 16). _json is what json itself runs on.


class _DecodeContext:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__
    memo = {}


_scan = _json.make_scanner(_DecodeContext())


def _unserializable(o):
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def decode(text):
    """The worker sends only what JSON.stringify made; anything else is a ValueError."""
    text = text.strip()
    try:
        value, end = _scan(text, 0)
    except Exception as e:  # the C scanner reports bad input in more than one way
        raise ValueError(f"not JSON: {text[:80]!r}") from e
    if end != len(text):
        raise ValueError("extra data after the JSON value")
    return value


def encode(value):
    """Strict JSON (no NaN or Infinity, which JSON.parse refuses)."""
    encoder = _json.make_encoder({}, _unserializable, _json.encode_basestring_ascii, None, ": ", ", ", False, False, False)
    return "".join(encoder(value, 0))


def load_handler(code_dir):
    """Runs code_dir/f.py as module "f" and returns its f."""
    sys.path.insert(0, code_dir)
    path = os.path.join(code_dir, "f.py")
    with open(path, "rb") as source:
        code = compile(source.read(), path, "exec")
    module = type(sys)("f")
    module.__file__ = path
    sys.modules["f"] = module
    exec(code, module.__dict__)
    handler = getattr(module, "f", None)
    if not callable(handler):
        raise TypeError("f.py defines no function f(event)")
    return handler


def failure(kind, e):
    import traceback  # only on the failure path: it costs a few ms to import

    return {"error": kind, "type": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()}


def answer(handler, request):
    """The reply to one request, as a line of JSON carrying the request's id."""
    request_id = request["id"]
    # BaseException: a handler calling sys.exit() is a failed invocation, not a dead sandbox.
    try:
        result = handler(request["event"])
    except BaseException as e:  # noqa: B036
        return encode(dict(failure("exception", e), id=request_id))
    try:
        # The id is the worker's string: escaping it is all its encoding takes.
        return '{"id": ' + _json.encode_basestring_ascii(request_id) + ', "result": ' + encode(result) + "}"
    except (TypeError, ValueError, RecursionError) as e:
        return encode(dict(failure("bad-result", e), id=request_id))


def send(conn, line):
    conn.sendall(line.encode() + b"\n")


def lines(conn):
    """Each line the worker sends, decoded. Only the bytes just received are searched for the
    newline and a line is joined once, when it ends, so a long request costs linear time."""
    parts = []
    while True:
        chunk = conn.recv(65536)
        if not chunk:
            return
        start = 0
        end = chunk.find(b"\n")
        while end >= 0:
            parts.append(chunk[start:end])
            yield b"".join(parts).decode()
            parts = []
            start = end + 1
            end = chunk.find(b"\n", start)
        if start < len(chunk):
            parts.append(chunk[start:])


def serve(conn, handler):
    for line in lines(conn):
        send(conn, answer(handler, decode(line)))


def run(socket_path, code_dir):
    """Dials the worker, loads the handler, says ready and serves; a zygote's fork calls this too."""
    # A crash leaves its cause in the log the worker quotes (a zygote's fork has no exit status
    # the worker can read: its parent is the zygote's reaper).
    faulthandler.enable()
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    conn.connect(socket_path)
    try:
        handler = load_handler(code_dir)
    except BaseException as e:  # noqa: B036
        message = failure("bad-handler", e)
        message["fatal"] = message.pop("error")
        send(conn, encode(message))
        sys.exit(1)
    send(conn, encode({"ready": True, "pid": os.getpid()}))
    serve(conn, handler)


if __name__ == "__main__":
    run(sys.argv[1], sys.argv[2])
