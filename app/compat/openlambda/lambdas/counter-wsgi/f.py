# A WSGI callable with no framework. COUNT lives as long as the instance: 1 on a fresh
# sandbox, and one more on each warm hit of the same instance.
COUNT = 0


def app(environ, start_response):
    global COUNT
    COUNT += 1
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    lines = [
        f"count={COUNT}",
        f"method={environ['REQUEST_METHOD']}",
        f"script={environ['SCRIPT_NAME']}",
        f"path={environ['PATH_INFO']}",
        f"query={environ['QUERY_STRING']}",
        f"type={environ.get('CONTENT_TYPE', '')}",
        f"custom={environ.get('HTTP_X_CUSTOM', '')}",
        f"body={body.decode('utf-8', 'replace')}",
    ]
    start_response("418 I'm a teapot", [("Content-Type", "text/plain"), ("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")])
    return ["\n".join(lines).encode()]
