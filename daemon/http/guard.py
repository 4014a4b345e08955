"""ASGI middleware in front of the app: a deadline for request bodies, and draining.

Body deadline: a request's body must arrive within ``body_timeout`` seconds of its headers.
A client that trickles it (a slow-body "slowloris") is answered ``408`` and the connection
is closed; without this a trickling client holds a connection, and a file descriptor, for
as long as it likes. (Slow *headers* are bounded by Hypercorn's keep-alive timeout, which
runs until a whole request head has arrived; the number of connections by
:mod:`daemon.http.server`.)

Draining: the guard counts requests in flight. Once the daemon is stopping, new ``/api/``
requests are answered ``503`` (``Connection: close``) while probes, ``/status`` and
``/metrics`` still answer, and :meth:`HttpGuard.drained` returns when the requests that
were already running have finished: shutdown waits for it (within the grace deadline)
before it closes the listener.
"""

from __future__ import annotations

__all__ = ["HttpGuard"]

from collections.abc import Awaitable, Callable
from typing import Any

import trio

ASGIApp = Callable[[dict[str, Any], Callable[..., Awaitable[Any]],
                    Callable[..., Awaitable[Any]]], Awaitable[None]]

_CLOSE = (b"connection", b"close")


class HttpGuard:
    """Wraps an ASGI app; see the module docstring.

    Args:
        app: the app behind the guard.
        body_timeout: seconds from a request's headers to the end of its body.
        stopping: True once the daemon is shutting down.
    """

    def __init__(self, app: ASGIApp, *, body_timeout: float,
                 stopping: Callable[[], bool]) -> None:
        self.app = app
        self.body_timeout = body_timeout
        self._stopping = stopping
        self.in_flight = 0
        self.timed_out = 0  # bodies cut off by the deadline, for tests and benchmarks
        self.changed = trio.Event()  # set (and replaced) whenever in_flight changes
        self._idle = trio.Event()
        self._idle.set()

    async def drained(self) -> None:
        """Return once no request is in flight. A checkpoint; cancellable."""
        while self.in_flight:
            await self._idle.wait()

    async def __call__(self, scope: dict[str, Any], receive: Callable[..., Awaitable[Any]],
                       send: Callable[..., Awaitable[Any]]) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self._stopping() and scope["path"].startswith("/api/"):
            await _answer(send, 503, b'{"error":"stopping"}')
            return
        self._count(+1)
        try:
            await self._call_with_deadline(scope, receive, send)
        finally:
            self._count(-1)

    def _count(self, delta: int) -> None:
        self.in_flight += delta
        if self.in_flight == 1 and delta > 0:
            self._idle = trio.Event()
        elif not self.in_flight:
            self._idle.set()
        self.changed.set()
        self.changed = trio.Event()

    async def _call_with_deadline(self, scope: dict[str, Any],
                                  receive: Callable[..., Awaitable[Any]],
                                  send: Callable[..., Awaitable[Any]]) -> None:
        deadline = trio.current_time() + self.body_timeout
        body_done = False
        started = False
        timed_out = False

        async def timed_receive() -> dict[str, Any]:
            nonlocal body_done, timed_out
            if body_done:
                message: dict[str, Any] = await receive()
                return message
            with trio.move_on_at(deadline):
                message = await receive()
                if message["type"] != "http.request" or not message.get("more_body"):
                    body_done = True
                return message
            timed_out = True
            return {"type": "http.disconnect"}  # the app stops waiting for the body

        async def tracked_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, timed_receive, tracked_send)
        if timed_out:
            self.timed_out += 1
            if not started:
                await _answer(send, 408, b'{"error":"request body too slow"}')


async def _answer(send: Callable[..., Awaitable[Any]], status: int, body: bytes) -> None:
    """A whole JSON response that closes the connection."""
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()), _CLOSE]})
    await send({"type": "http.response.body", "body": body})
