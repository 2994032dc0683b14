# The entry file and the WSGI object's name both come from ol.yaml.
def my_wsgi_app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"my_wsgi_app from main.py\n"]


def app(environ, start_response):
    start_response("500 Internal Server Error", [])
    return [b"the wrong object was served\n"]
