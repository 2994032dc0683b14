# A Flask app as OpenLambda's documentation writes one: routes below /run/flask-app/, its own
# status codes and headers, a 404 handler, the raw body of a POST.
from flask import Flask, Response, request

app = Flask(__name__)
created = 0


@app.errorhandler(404)
def not_found(e):
    return f"no route {request.path}\n", 404


@app.route("/")
def hello():
    return Response("hi\n", status=418, headers={"A": "B"})


@app.route("/info")
def info():
    return {"path": request.path, "args": request.args.to_dict(), "script_root": request.script_root}


@app.route("/echo", methods=["POST", "PUT"])
def echo():
    return Response(request.get_data(), mimetype=request.content_type or "text/plain")
