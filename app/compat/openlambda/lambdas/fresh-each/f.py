# reuse-sandbox: false gives every request a new sandbox, so CALLS is always 1.
CALLS = 0


def f(event):
    global CALLS
    CALLS += 1
    return {"calls": CALLS}
