# The smallest OpenLambda handler: the event back, as the worker's json.dumps writes it.
def f(event):
    return event
