# A FastAPI app: ASGI, path and query parameters, JSON answers, and a counter that shows the
# app object is made once per instance.
from fastapi import FastAPI

app = FastAPI()
hits = {"n": 0}


@app.get("/")
def hello():
    hits["n"] += 1
    return {"message": "hello world", "hits": hits["n"]}


@app.get("/items/{item_id}")
def item(item_id: int, q: str = ""):
    return {"item_id": item_id, "q": q}
