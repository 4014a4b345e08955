"""``/events``: the event log as a websocket, for ``postroom events --follow`` and the
status page.

::

    WS /events[?after=ID][&account=A][&kind=K[,K...]]

Each message is one event as a JSON object, the shape ``postroom events`` prints:
``{"id", "event", "account", "at", ...data}`` (an import names ``message_id``,
``source_key``, ``conversationmessage``). Events come in id order, starting after
``after`` (default: only new ones), so a client that reconnects with the last id it saw
misses nothing and sees nothing twice. ``account`` and ``kind`` filter (a kind ending in
``.`` matches a prefix: ``kind=outbox.``).

Who may connect: as the API (:func:`daemon.http.app._check_caller`) — the bearer token
(``Authorization`` header, or the status page's session cookie) when one is configured,
else only a loopback ``Host`` without a foreign ``Origin``. A refusal closes the
handshake with HTTP 401/403 before the websocket opens.

Wake-ups: the store has no notification, so the stream looks at ``events_since`` when an
account or the outbox reports a change (an import, a send, a state change: the
``changed`` events of their statuses), and at the latest every :data:`POLL_SECONDS`
(events written elsewhere: the API, another process).
"""

from __future__ import annotations

__all__ = ["POLL_SECONDS", "event_as_json", "event_stream_blueprint"]

import hmac
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import orjson
import trio
from quart import Blueprint, websocket

from daemon.http.context import DaemonContext
from daemon.http.loopback import is_loopback_host
from daemon.store.base import Event, Tx

POLL_SECONDS = 1.0
_BATCH = 500


def event_as_json(event: Event) -> dict[str, Any]:
    """One event as ``postroom events`` prints it."""
    return {**event.data, "id": event.id, "event": event.kind, "account": event.account,
            "at": event.created_at.isoformat() if event.created_at else None}


def event_stream_blueprint(daemon: DaemonContext,
                           session_token: Callable[[], bool] | None = None) -> Blueprint:
    """``WS /events``; ``session_token()`` says whether a status-page session is valid."""
    bp = Blueprint("event_stream", __name__)

    @bp.websocket("/events")
    async def events() -> Any:
        refusal = _refusal(daemon, session_token)
        if refusal is not None:
            return refusal
        args = websocket.args
        after = _number(args.get("after") or args.get("_after"))
        if after is None:
            after = await daemon.store.run(lambda tx: tx.last_event_id())
        wanted = _matcher(args.get("account"), args.get("kind"))
        await websocket.accept()
        while not daemon.stopping:
            batch = await daemon.store.run(_events_since, after)
            for event in batch:
                after = event.id
                if wanted(event):
                    await websocket.send(orjson.dumps(event_as_json(event)).decode())
            if len(batch) < _BATCH:
                await _next_change(daemon)
        return None

    return bp


def _refusal(daemon: DaemonContext, session_token: Callable[[], bool] | None) -> Any:
    """None when the caller may connect, else the (status, body) to refuse with."""
    token = daemon.api_token
    if token is None:
        origin = websocket.headers.get("Origin")
        if not is_loopback_host(websocket.headers.get("Host", "")) or (
                origin is not None and not is_loopback_host(urlsplit(origin).netloc)):
            return "only loopback Host and Origin are answered without an api_token", 403
        return None
    given = websocket.headers.get("Authorization", "").encode()
    if hmac.compare_digest(given, f"Bearer {token.reveal()}".encode()):
        return None
    if session_token is not None and session_token():
        return None
    return "missing or wrong bearer token", 401


def _number(text: str | None) -> int | None:
    if text is None or not text.isascii() or not text.isdigit() or len(text) > 18:
        return None
    return int(text)


def _matcher(account: str | None, kinds: str | None) -> Callable[[Event], bool]:
    exact = {k for k in (kinds or "").split(",") if k and not k.endswith(".")}
    prefixes = tuple(k for k in (kinds or "").split(",") if k.endswith("."))

    def wanted(event: Event) -> bool:
        if account and event.account != account:
            return False
        if not kinds:
            return True
        return event.kind in exact or (bool(prefixes) and event.kind.startswith(prefixes))

    return wanted


async def _next_change(daemon: DaemonContext) -> None:
    """Return when an account or the outbox reports a change, or after POLL_SECONDS."""
    changes = [h.status.changed for h in daemon.handles.values()]
    outbox = getattr(daemon, "outbox", None)
    if outbox is not None:
        changes.append(outbox.status.changed)
    with trio.move_on_after(POLL_SECONDS):
        async with trio.open_nursery() as nursery:
            for changed in changes:
                nursery.start_soon(_wait_then_cancel, changed, nursery.cancel_scope)


async def _wait_then_cancel(changed: trio.Event, scope: trio.CancelScope) -> None:
    await changed.wait()
    scope.cancel()


def _events_since(tx: Tx, after: int) -> list[Event]:
    return tx.events_since(after, _BATCH)
