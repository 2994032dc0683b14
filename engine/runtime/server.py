"""The process inside a lean container that runs a handler.

It loads the lambda's entry (OpenLambda's rules, below) from <handler dir>, dials the worker's
Unix socket in the sandbox's scratch directory (the worker listens, so it learns the sandbox is
ready without polling), says whether the handler loaded, then answers one request per line:

    worker -> sandbox   {"id": <request id>, "event": <any JSON>}
                      | {"id": <request id>, "http": {"method": ..., "root": "/run/<name>",
                         "path": "/sub/path", "query": "a=1", "headers": [[name, value], ...],
                         "body": <base64>}}
    sandbox -> worker   {"id": <the same id>, "result": <any JSON>}               (to an event)
                      | {"id": <the same id>, "status": <int>, "reason": <text>,
                         "headers": [[name, value], ...], "body": <base64>}       (to http)
                      | {"id": <the same id>, "error": "exception" | "bad-result" | "bad-request",
                         "type": ..., "message": ..., "traceback": ...}

and, once, right after connecting (no id):

    sandbox -> worker   {"ready": true, "pid": <pid in the sandbox>, "entry": "func" | "wsgi" | "asgi"}
                      | {"fatal": "bad-handler", "type": ..., "message": ..., "traceback": ...}

The entry, as OpenLambda's worker finds it: the module in `file` (f.py unless the lambda's
ol.yaml sets OL_ENTRY_FILE), then the attribute named by OL_WSGI_ENTRY or OL_ASGI_ENTRY, else
the function `f` (`handler` for the SOCK paper's lambda_func.py), else `app`: ASGI when its
__call__ is a coroutine function, WSGI otherwise. A function answers an HTTP request as
OpenLambda's does: the body is the event (JSON; empty is {}), and the reply is exactly
json.dumps(result), NaN included. The engine's config (argv[3], JSON) carries the entry and the
environment the lambda's ol.yaml asks for, set before the module is loaded.

The id is random, made by the worker for each request. The handler shares this process and
may write to the socket itself; the worker takes a line with another id, a line sent while no
request is outstanding, garbage, or a line longer than its limit as a broken sandbox and
destroys it, so nothing a handler writes can pass for the answer to a later request.

A zygote (zygote.py) imports packages first and forks; each forked child then calls run()
for its own handler.
"""

import _json
import _socket
import binascii
import faulthandler
import os
import sys

# The runtime's own imports are part of every cold start, so it keeps to C modules that cost
# next to nothing to load: the json package pulls in re and enum, socket.py and traceback more
# (see paper-repro.md, row 16). _json is what json itself runs on; binascii is C too.


class _DecodeContext:
    """json.loads' defaults: NaN and Infinity are read, as Python's json reads them."""

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
    """Strict JSON (no NaN or Infinity, which JSON.parse refuses): the channel's own lines."""
    encoder = _json.make_encoder({}, _unserializable, _json.encode_basestring_ascii, None, ": ", ", ", False, False, False)
    return "".join(encoder(value, 0))


def dumps(value):
    """Byte for byte what json.dumps(value) writes with its defaults (NaN and Infinity too),
    which is what an OpenLambda worker answers with: its C encoder with the same settings."""
    if isinstance(value, str):
        return _json.encode_basestring_ascii(value)
    encoder = _json.make_encoder({}, _unserializable, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True)
    return "".join(encoder(value, 0))


CO_COROUTINE = 0x80


def is_coroutine_function(obj):
    """Whether calling obj (a function, or an object with __call__) makes a coroutine: an ASGI
    app. Read from the code object's flags, so that neither inspect nor asyncio is imported."""
    func = obj if hasattr(obj, "__code__") else getattr(type(obj), "__call__", None)
    func = getattr(func, "__func__", func)
    code = getattr(func, "__code__", None)
    return code is not None and bool(code.co_flags & CO_COROUTINE)


class Entry:
    """The lambda's entry point and how it is called: "func", "wsgi" or "asgi"."""

    def __init__(self, kind, target):
        self.kind = kind
        self.target = target
        self.loop = None
        if kind == "asgi":
            # Made with the instance and kept: asyncio's import (about 100 ms here, unless a
            # zygote imported it) is part of loading, not of the first request.
            import asyncio

            self.loop = asyncio.new_event_loop()


def load_handler(code_dir, config=None):
    """Runs the entry file as its module (f.py as module "f") and finds the entry point in it."""
    config = config or {}
    os.environ.update(config.get("env") or {})
    sys.path.insert(0, code_dir)
    entry_file = config.get("file", "f.py")
    path = os.path.join(code_dir, entry_file)
    with open(path, "rb") as source:
        code = compile(source.read(), path, "exec")
    name = os.path.basename(entry_file).removesuffix(".py")
    module = type(sys)(name)
    module.__file__ = path
    sys.modules[name] = module
    exec(code, module.__dict__)
    for kind in ("wsgi", "asgi"):
        if config.get(kind):
            target = getattr(module, config[kind], None)
            if not callable(target):
                raise TypeError(f"{entry_file} defines no {kind.upper()} app {config[kind]!r}")
            return Entry(kind, target)
    func = config.get("func", "f")
    if callable(getattr(module, func, None)):
        return Entry("func", getattr(module, func))
    app = getattr(module, "app", None)
    if callable(app):
        return Entry("asgi" if is_coroutine_function(app) else "wsgi", app)
    raise TypeError(f"{entry_file} defines no function {func}(event) and no app")


def failure(kind, e):
    import traceback  # only on the failure path: it costs a few ms to import

    return {"error": kind, "type": type(e).__name__, "message": str(e), "traceback": traceback.format_exc()}


class BadRequest(Exception):
    """The caller's request cannot be given to this handler (a function's body that is not JSON)."""


class Response:
    """An HTTP answer as the handler gave it; a function's result is written with dumps() when
    the answer is rendered, so that a result that is not JSON is told from the handler failing."""

    def __init__(self, status, reason, headers, body=b"", result=None):
        self.status, self.reason, self.headers, self.body, self.result = status, reason, headers, body, result


def call_func(entry, request, http):
    """Runs f on the event, or on an HTTP request's body as OpenLambda's worker does."""
    if http is None:
        return entry.target(request["event"])
    body = binascii.a2b_base64(http["body"])
    try:
        event = decode(body.decode()) if body.strip() else {}
    except (UnicodeDecodeError, ValueError) as e:
        raise BadRequest(f"the body is not JSON: {e}") from None
    return Response(200, "OK", [("Content-Type", "application/json")], result=(entry.target(event),))


def call_wsgi(entry, http):
    """PEP 3333: the environ OpenLambda's worker builds, the app's iterable collected whole."""
    import io

    host = dict((n.lower(), v) for n, v in http["headers"]).get("host", "")
    server_name, _, server_port = host.partition(":")
    body = binascii.a2b_base64(http["body"])
    environ = {
        "REQUEST_METHOD": http["method"],
        "SCRIPT_NAME": http["root"],
        "PATH_INFO": http["path"],
        "QUERY_STRING": http["query"],
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    for name, value in http["headers"]:
        key = name.upper().replace("-", "_")
        if key != "CONTENT_LENGTH":
            environ[key if key == "CONTENT_TYPE" else "HTTP_" + key] = value
    started = []
    chunks = []

    def start_response(status, response_headers, exc_info=None):
        if exc_info and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [status, response_headers]
        return chunks.append

    result = entry.target(environ, start_response)
    try:
        for chunk in result:
            chunks.append(chunk)
    finally:
        if hasattr(result, "close"):
            result.close()
    if not started:
        raise RuntimeError("the WSGI app returned without calling start_response")
    code, _, reason = str(started[0]).partition(" ")
    return Response(code, reason, started[1], b"".join(chunks))


def call_asgi(entry, http):
    """ASGI 3.0's http scope as OpenLambda's worker makes it, run on the instance's event loop."""
    body = binascii.a2b_base64(http["body"])
    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": http["method"],
        "scheme": "http",
        "path": http["path"],
        "raw_path": (http["root"] + http["path"]).encode(),
        "query_string": http["query"].encode(),
        "root_path": http["root"],
        "headers": [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in http["headers"]],
        "client": None,
        "server": None,
    }
    given = []
    response = Response(None, "", [])
    chunks = []

    async def receive():
        if given:
            return {"type": "http.disconnect"}
        given.append(True)
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        if message["type"] == "http.response.start":
            response.status = message["status"]
            response.headers = [(n.decode("latin-1"), v.decode("latin-1")) for n, v in message.get("headers", [])]
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    entry.loop.run_until_complete(entry.target(scope, receive, send))
    if response.status is None:
        raise RuntimeError("the ASGI app returned without starting a response")
    response.body = b"".join(chunks)
    return response


def render(outcome):
    """The reply's fields after its id: a result, or an HTTP response with its body in base64."""
    if not isinstance(outcome, Response):
        return '"result": ' + encode(outcome)
    body = dumps(outcome.result[0]).encode() if outcome.result else bytes(outcome.body)
    return (
        '"status": ' + str(int(outcome.status))
        + ', "reason": ' + _json.encode_basestring_ascii(str(outcome.reason))
        + ', "headers": ' + encode([[str(n), str(v)] for n, v in outcome.headers])
        + ', "body": "' + binascii.b2a_base64(body, newline=False).decode() + '"'
    )


def answer(entry, request):
    """The reply to one request, as a line of JSON carrying the request's id."""
    request_id = request["id"]
    http = request.get("http")
    # BaseException: a handler calling sys.exit() is a failed invocation, not a dead sandbox.
    try:
        if entry.kind == "func":
            outcome = call_func(entry, request, http)
        elif http is None:
            raise TypeError(f"this lambda is a {entry.kind.upper()} app: it answers HTTP requests, not events")
        else:
            outcome = (call_wsgi if entry.kind == "wsgi" else call_asgi)(entry, http)
    except BadRequest as e:
        return encode(dict(failure("bad-request", e), id=request_id))
    except BaseException as e:  # noqa: B036
        return encode(dict(failure("exception", e), id=request_id))
    try:
        # The id is the worker's string: escaping it is all its encoding takes.
        return '{"id": ' + _json.encode_basestring_ascii(request_id) + ", " + render(outcome) + "}"
    except (TypeError, ValueError, RecursionError) as e:
        return encode(dict(failure("bad-result", e), id=request_id))


def rehearse():
    """Answers a made-up request of each form, with a function of its own, and drops the answers.
    A zygote's spare child does this while it waits for its request: a first answer in a forked
    process writes to hundreds of pages it shares with its zygote (reference counts, caches),
    each copied on that first write, about half a millisecond in all; done here, that is off the
    request's path. No code of the lambda runs."""
    entry = Entry("func", lambda event: event)
    body = binascii.b2a_base64(b'{"a": [1, 2.5, "x", null]}', newline=False).decode()
    http = {"method": "POST", "root": "/run/r", "path": "/", "query": "", "headers": [["Host", "h"]], "body": body}
    for request in ({"id": "rehearsal", "http": http}, {"id": "rehearsal", "event": [1, "x"]}):
        answer(entry, decode(encode(request)))


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


def serve(conn, entry):
    for line in lines(conn):
        send(conn, answer(entry, decode(line)))


def run(socket_path, code_dir, config=None):
    """Dials the worker, loads the handler, says ready and serves; a zygote's fork calls this too."""
    # A crash leaves its cause in the log the worker quotes (a zygote's fork has no exit status
    # the worker can read: its parent is the zygote's reaper).
    faulthandler.enable()
    conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    conn.connect(socket_path)
    try:
        entry = load_handler(code_dir, config)
    except BaseException as e:  # noqa: B036
        message = failure("bad-handler", e)
        message["fatal"] = message.pop("error")
        send(conn, encode(message))
        sys.exit(1)
    send(conn, encode({"ready": True, "pid": os.getpid(), "entry": entry.kind}))
    serve(conn, entry)


def main():
    """python3 -c 'import server; server.main()' <socket> <code dir> [<config JSON>] (runtimeCommand)."""
    run(sys.argv[1], sys.argv[2], decode(sys.argv[3]) if len(sys.argv) > 3 else None)
