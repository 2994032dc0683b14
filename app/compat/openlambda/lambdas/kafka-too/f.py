def f(event):
    return {"via": "http"}
