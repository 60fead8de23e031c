"""``BodyLimit``: an ASGI middleware that refuses request bodies over a size limit (413).

No route of the API takes more than a small JSON body, yet without a limit every request
body was read into memory whole (eight 50 MB posts took almost 1 GiB). A declared
``Content-Length`` over the limit is refused before a byte is read; a body without one
(chunked) is counted as it arrives and refused once it passes the limit, so memory stays
bounded either way. WebSocket and lifespan traffic pass through untouched.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` once the body passes the limit; FastAPI re-raises an
    ``HTTPException`` met while reading a body, so it arrives as 413, not "bad body" 400."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, message(max_bytes))


def message(max_bytes: int) -> str:
    return (f"request body larger than {max_bytes} bytes; send less (the limit is "
            "server.max_body_bytes)")  # fmt: skip


class BodyLimit:
    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return msg

        async def watched(msg: Message) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, counted, watched)
        except BodyTooLarge:
            # Reached only when no handler inside turned it into a response (a route that
            # streams the body itself); if a response has begun there is nothing left to say.
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"error": {"code": "too_large", "message": message(self.max_bytes)}})
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})  # fmt: skip
        await send({"type": "http.response.body", "body": body.encode()})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
