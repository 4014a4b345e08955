"""``postroom events [--follow]``: the event log, streamed from the running daemon.

``--follow`` connects to the daemon's ``/events`` websocket (through ``trio-websocket``)
and prints each event as it is written, within a fraction of a second. When the
connection drops (the daemon restarts) it reconnects with the last id it printed, so
nothing is missed and nothing printed twice. When the daemon cannot be reached over
HTTP at all, or is older and has no ``/events`` (the handshake is refused with 404), it
falls back to reading the store every :data:`POLL_SECONDS` (the CLI's old behaviour).
"""

from __future__ import annotations

__all__ = ["POLL_SECONDS", "follow", "print_event", "read_store", "stream"]

import json
import sys
import time
from collections.abc import Callable
from typing import Any

import trio
from trio_websocket import (
    ConnectionClosed,
    ConnectionRejected,
    HandshakeError,
    open_websocket_url,
)

POLL_SECONDS = 0.5
#: Reconnect attempts after a drop before falling back to the store.
RECONNECTS = 20

Emit = Callable[[dict[str, Any]], None]


def print_event(event: dict[str, Any]) -> None:
    print(json.dumps(event, default=str), flush=True)


def read_store(config: Any, after: int, *, follow: bool, emit: Emit) -> int:
    """Print events after ``after`` from the store; with ``follow``, forever."""
    from daemon.http.event_stream import event_as_json
    from daemon.store import open_store

    store = open_store(config.daemon.store)
    try:
        while True:
            with store.transaction() as tx:
                events = tx.events_since(after, limit=500)
            for event in events:
                emit(event_as_json(event))
                after = event.id
            if not follow:
                return after
            if not events:
                time.sleep(POLL_SECONDS)  # polling the store: nothing can wake us
    finally:
        store.close()


def follow(config: Any, after: int, *, emit: Emit) -> int:
    """Stream events (see the module docstring) until interrupted; returns the exit code."""
    url = _events_url(config)
    if url is not None:
        after, usable = trio.run(stream, url, _headers(config), after, emit)
        if not usable:
            print("postroom events: the daemon's /events is not available; reading the store",
                  file=sys.stderr)
    read_store(config, after, follow=True, emit=emit)
    return 0


async def stream(url: str, headers: list[tuple[bytes, bytes]], after: int, emit: Emit,
                 *, reconnects: int = RECONNECTS, retry_delay: float = 0.5
                 ) -> tuple[int, bool]:
    """Print events from ``url`` (resuming after ``after``); reconnect when it drops.

    Returns ``(last id printed, whether the websocket ever worked)`` once it gives up.
    """
    worked, failures = False, 0
    while failures <= reconnects:
        try:
            async with open_websocket_url(f"{url}?after={after}",
                                          extra_headers=headers) as ws:
                worked, failures = True, 0
                while True:
                    event = json.loads(await ws.get_message())
                    emit(event)
                    after = event["id"]
        except ConnectionRejected as exc:
            if not worked or exc.status_code in (401, 403, 404):
                return after, worked
        except (HandshakeError, ConnectionClosed, OSError, trio.BrokenResourceError):
            if not worked:
                return after, False
        failures += 1
        await trio.sleep(retry_delay)  # the daemon is restarting: give it a moment
    return after, worked


def listener_address(config: Any) -> str | None:
    """``host:port`` a local client reaches the daemon's listener at (a wildcard bind is
    reached on loopback); None when the HTTP listener is off."""
    if not config.http.enabled:
        return None
    host, _, port = config.http.bind.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{port}"


def _events_url(config: Any) -> str | None:
    address = listener_address(config)
    return None if address is None else f"ws://{address}/events"


def _headers(config: Any) -> list[tuple[bytes, bytes]]:
    token = config.http.api_token
    if token is None:
        return []
    return [(b"Authorization", f"Bearer {token.reveal()}".encode())]
