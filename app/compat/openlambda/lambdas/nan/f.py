# Python's json.dumps writes NaN and Infinity; an OpenLambda worker answers them as written.
def f(event):
    return {"nan": float("nan"), "inf": float("inf"), "float": 1.0, "text": "\u00e9"}
