import os


def f(event):
    return {"greeting": os.environ.get("GREETING"), "mode": os.environ.get("MODE"), "event": event}
