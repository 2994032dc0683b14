# No f.py: ol.yaml's OL_ENTRY_FILE names this file, and its `app` is served.
from flask import Flask

app = Flask("flask-entry")


@app.route("/")
def index():
    return "served from app.py\n"
