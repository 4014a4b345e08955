"""The liveness probe answered in front of Quart, straight from ASGI.

``/livez`` means "the event loop answers"; it must stay cheap under any load, because an
orchestrator restarts a daemon whose liveness probe times out. Quart's request machinery
costs about ten times the bare ASGI exchange on a busy two-core machine (see
benchmarks/README.md), so this route skips it. Everything else goes on to the app
(:class:`daemon.http.guard.HttpGuard`, then Quart).
"""

from __future__ import annotations

__all__ = ["with_fast_probes"]

from collections.abc import Awaitable, Callable
from typing import Any

ASGIApp = Callable[[dict[str, Any], Callable[..., Awaitable[Any]],
                    Callable[..., Awaitable[Any]]], Awaitable[None]]

_LIVE_BODY = b'{"status":"ok"}\n'
_LIVE_HEADERS = [(b"content-type", b"application/json"),
                 (b"content-length", str(len(_LIVE_BODY)).encode()),
                 (b"cache-control", b"no-store")]


def with_fast_probes(app: ASGIApp) -> ASGIApp:
    """Wrap ``app`` so that ``GET``/``HEAD /livez`` is answered without it."""

    async def asgi(scope: dict[str, Any], receive: Callable[..., Awaitable[Any]],
                   send: Callable[..., Awaitable[Any]]) -> None:
        if (scope["type"] == "http" and scope["path"] == "/livez"
                and scope["method"] in ("GET", "HEAD")):
            await send({"type": "http.response.start", "status": 200,
                        "headers": _LIVE_HEADERS})
            body = b"" if scope["method"] == "HEAD" else _LIVE_BODY
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return asgi
