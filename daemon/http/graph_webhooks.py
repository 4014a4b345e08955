"""Graph's webhook routes, answered in front of Quart (as ``/livez`` is).

``POST /oauth/msg/notification`` and ``POST /oauth/msg/lifecycle`` (the reference's
endpoints). Graph marks an endpoint slow above 2.9 s and drops it when 15 % of answers are
slow (docs-contrib: change-notifications-delivery-webhooks), and a notification storm
must not starve the rest of the daemon, so these skip Quart's request machinery: about a
tenth of the cost per request (benchmarks/README.md).

* ``?validationToken=…`` on either route: 200, ``text/plain``, the URL-decoded token
  (Graph rejects an encoded one), whatever the body.
* A notification body ``{"value": [...]}``: each item's ``clientState`` is checked against
  its subscription (:meth:`WebhookRegistry.verify`, constant time). Valid ones kick their
  account durably, then the route answers 202; invalid ones are ignored and counted; a
  body that is not such JSON gets 400 and does nothing. A store that cannot record the
  kick gets 503, so Graph retries.
* A lifecycle body: each valid item's ``lifecycleEvent`` is recorded and handed to the
  account's actor; 202 at once (the actor does the work).
"""

from __future__ import annotations

__all__ = ["LIFECYCLE_PATH", "NOTIFICATION_PATH", "with_graph_webhooks"]

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

import structlog
import trio

from daemon.errors import TransientError
from daemon.graph.notifications import LIFECYCLE_EVENTS, Verdict, WebhookRegistry

log = structlog.get_logger("postroom.http.graph")

NOTIFICATION_PATH = "/oauth/msg/notification"
LIFECYCLE_PATH = "/oauth/msg/lifecycle"
MAX_BODY = 1024 * 1024
BODY_TIMEOUT = 10.0

ASGIApp = Callable[[dict[str, Any], Callable[..., Awaitable[Any]],
                    Callable[..., Awaitable[Any]]], Awaitable[None]]
Send = Callable[..., Awaitable[Any]]


def with_graph_webhooks(app: ASGIApp, registry: WebhookRegistry) -> ASGIApp:
    """Wrap ``app`` so that the two Graph routes are answered by ``registry``."""

    async def asgi(scope: dict[str, Any], receive: Callable[..., Awaitable[Any]],
                   send: Send) -> None:
        path = scope.get("path")
        if scope["type"] == "http" and path in (NOTIFICATION_PATH, LIFECYCLE_PATH):
            await _webhook(scope, receive, send, registry, lifecycle=path == LIFECYCLE_PATH)
            return
        await app(scope, receive, send)

    return asgi


async def _webhook(scope: dict[str, Any], receive: Callable[..., Awaitable[Any]],
                   send: Send, registry: WebhookRegistry, *, lifecycle: bool) -> None:
    if scope["method"] != "POST":
        await _answer(send, 405, b"", extra=[(b"allow", b"POST")])
        return
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    if "validationToken" in query:
        registry.counters.validations += 1
        await _answer(send, 200, query["validationToken"][0].encode(), b"text/plain")
        return
    body = await _read_body(receive)
    items = _items(body)
    if items is None:
        registry.counters.malformed += 1
        await _answer(send, 400, b'{"error":"malformed notification"}\n', b"application/json")
        return
    account = query.get("account", [None])[0]
    try:
        if lifecycle:
            await _lifecycle(items, account, registry)
        else:
            await _notifications(items, account, registry)
    except TransientError as exc:
        log.warning("graph.webhook.unrecorded", error=str(exc))
        await _answer(send, 503, b"", extra=[(b"retry-after", b"5")])
        return
    await _answer(send, 202, b"")


async def _notifications(items: list[dict[str, Any]], account: str | None,
                         registry: WebhookRegistry) -> None:
    kicked: set[str] = set()
    for item in items:
        registry.counters.notifications += 1
        verdict, owner = registry.verify(account, item.get("subscriptionId"),
                                         item.get("clientState"))
        if verdict is Verdict.VALID and owner is not None:
            kicked.add(owner)
        else:
            registry.counters.invalid += 1
    for owner in sorted(kicked):
        await registry.kick(owner)


async def _lifecycle(items: list[dict[str, Any]], account: str | None,
                     registry: WebhookRegistry) -> None:
    for item in items:
        registry.counters.lifecycle += 1
        verdict, owner = registry.verify(account, item.get("subscriptionId"),
                                         item.get("clientState"))
        event = item.get("lifecycleEvent")
        if verdict is not Verdict.VALID or owner is None or event not in LIFECYCLE_EVENTS:
            registry.counters.invalid += 1
            continue
        log.info("graph.lifecycle.received", lifecycle_event=event, account=owner)
        await registry.lifecycle(owner, event)


def _items(body: bytes | None) -> list[dict[str, Any]] | None:
    """The ``value`` items of a notification body, or None if it is malformed."""
    if body is None:
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("value"), list):
        return None
    items: list[dict[str, Any]] = data["value"]
    if not items or not all(isinstance(i, dict) for i in items):
        return None
    return items


async def _read_body(receive: Callable[..., Awaitable[Any]]) -> bytes | None:
    """The request body, or None when it is too large or too slow."""
    chunks: list[bytes] = []
    size = 0
    with trio.move_on_after(BODY_TIMEOUT):
        while True:
            event = await receive()
            if event["type"] != "http.request":
                return None
            chunk = event.get("body", b"")
            size += len(chunk)
            if size > MAX_BODY:
                return None
            chunks.append(chunk)
            if not event.get("more_body"):
                return b"".join(chunks)
    return None


async def _answer(send: Send, status: int, body: bytes, content_type: bytes | None = None,
                  extra: list[tuple[bytes, bytes]] | None = None) -> None:
    headers = [(b"content-length", str(len(body)).encode()), (b"cache-control", b"no-store"),
               (b"x-content-type-options", b"nosniff")]
    if content_type is not None:
        headers.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status,
                "headers": headers + (extra or [])})
    await send({"type": "http.response.body", "body": body})
