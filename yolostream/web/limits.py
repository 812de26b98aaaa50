"""`BodyLimit`: an ASGI middleware that refuses request bodies over a size, before anything parses them.

A declared ``Content-Length`` over the limit is answered 413 before anything parses the body. A body
without one (chunked) is counted as it arrives; past the limit reading it raises a 413 `HTTPException`
(FastAPI passes those through its body parsing to the JSON error handler). Nothing past the limit is
kept, so an endless upload costs at most ``max_bytes`` of memory and disk.

A refused body is read and thrown away up to ``drain_factor`` times the limit before answering: a client
still sending when the server closes would otherwise get a connection reset instead of the 413. Beyond
that the answer goes out at once and the connection is closed.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from starlette.exceptions import HTTPException

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def send_json(send: Send, status: int, body: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    """A complete JSON response straight over ASGI (for middlewares, which run outside FastAPI's handlers)."""
    data = json.dumps(body).encode()
    head = [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": data})


class BodyLimit:
    """Wraps ``app``: HTTP requests may carry at most ``max_bytes`` of body."""

    def __init__(self, app: ASGIApp, max_bytes: int, drain_factor: int = 4) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.drain_bytes = drain_factor * max_bytes

    async def _drain(self, receive: Receive, seen: int) -> None:
        """Read and drop the rest of a refused body, up to ``drain_bytes`` in all."""
        while seen <= self.drain_bytes:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            seen += len(message.get("body", b""))

    def _message(self) -> str:
        return f"request body too large: at most {self.max_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                await send_json(send, 400, {"error": "invalid Content-Length header", "status": 400})
                return
            if size > self.max_bytes:
                if size <= self.drain_bytes:
                    await self._drain(receive, 0)
                await send_json(send, 413, {"error": self._message(), "status": 413}, [(b"connection", b"close")])
                return
        seen = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    if message.get("more_body", False):
                        await self._drain(receive, seen)
                    raise HTTPException(413, self._message())
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except HTTPException as e:  # raised by counted_receive where no handler took it
            if e.status_code != 413 or started:
                raise
            await send_json(send, 413, {"error": self._message(), "status": 413}, [(b"connection", b"close")])
