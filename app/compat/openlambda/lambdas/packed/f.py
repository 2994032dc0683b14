# Packed as <registry>/packed.tar.gz by the suite, as OpenLambda's registry keeps lambdas.
import os


def f(event):
    return {"packed": True, "files": sorted(os.listdir(os.path.dirname(__file__)))}
