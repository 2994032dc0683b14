# An ASGI app with no framework: found as `app`, told from WSGI by its async __call__.
class App:
    def __init__(self):
        self.count = 0

    async def __call__(self, scope, receive, send):
        self.count += 1
        message = await receive()
        body = f"count={self.count} root={scope['root_path']} path={scope['path']} query={scope['query_string'].decode()} body={message['body'].decode()}"
        await send({"type": "http.response.start", "status": 201, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": body.encode()})


app = App()
