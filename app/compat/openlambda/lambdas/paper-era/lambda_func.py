# The SOCK paper's lambda format: lambda_func.py defining handler(event), its packages in
# packages.txt as "<import>:<install>", invoked with POST /runLambda/<name>.
import yaml


def handler(event):
    return {"hello": event.get("name"), "yaml": yaml.__name__}
