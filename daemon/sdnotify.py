"""systemd's notify protocol (sd_notify(3)): readiness, the watchdog, and STATUS= lines.

A datagram of ``KEY=VALUE`` lines to ``$NOTIFY_SOCKET``; a leading ``@`` means the
abstract namespace. Without ``$NOTIFY_SOCKET`` (not under systemd) every call is a no-op.
The watchdog pings from a Trio task, so a blocked event loop misses its pings and
systemd restarts the service.

A notification that cannot be sent (a stale ``NOTIFY_SOCKET`` inherited from a shell, a
socket that went away) never stops the daemon: it is logged once per process, as
``sdnotify.failed`` at warning level, and later failures are silent. The trade-off: under
systemd a lost ``READY=1`` makes the start time out, and that is where the operator will
look, with the one warning in the journal saying why.

``STATUS=`` carries a one-line summary of the accounts (``systemctl status`` shows it):
:func:`status_line` makes it from the daemon's ``/status`` document, and
:func:`report_status` sends it whenever it changes.
"""

from __future__ import annotations

__all__ = ["STATUS_INTERVAL_SECONDS", "notify", "report_status", "status_line", "watchdog"]

import os
import socket
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import structlog
import trio

log = structlog.get_logger("postroom.sdnotify")

#: How often :func:`report_status` looks for a changed summary.
STATUS_INTERVAL_SECONDS = 5.0

_warned = [False]


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``); return whether it was sent.

    False without ``$NOTIFY_SOCKET``, and when sending failed (logged once, see the module
    docstring). Never raises.
    """
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    target = "\0" + address[1:] if address.startswith("@") else address
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.connect(target)
            sock.sendall(state.encode())
    except OSError as exc:
        if not _warned[0]:
            _warned[0] = True
            log.warning("sdnotify.failed", socket=address,
                        state=state.partition("=")[0],
                        error=f"{type(exc).__name__}: {exc.strerror or exc}")
        return False
    return True


def watchdog_interval() -> float | None:
    """Half the ``WATCHDOG_USEC`` systemd asked for, or None when not enabled for us."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    if not usec or (pid and int(pid) != os.getpid()):
        return None
    return int(usec) / 1_000_000 / 2


async def watchdog() -> None:
    """Ping ``WATCHDOG=1`` forever at half the configured interval (no-op if unset)."""
    interval = watchdog_interval()
    if interval is None:
        return
    while True:
        notify("WATCHDOG=1")
        await trio.sleep(interval)


def status_line(status: Mapping[str, Any]) -> str:
    """One line for ``STATUS=``: the accounts by state, then the message counts.

    ``status`` is :meth:`daemon.app.Daemon.status`'s document, e.g. ``3 accounts: 2 idle,
    1 backoff; 120 imported, 4 duplicates, 0 discarded, 1 failed; outbox 7 sent,
    0 failed``.
    """
    accounts = status.get("accounts", [])
    states = Counter(a.get("state", "unknown") for a in accounts)
    totals: Counter[str] = Counter()
    for account in accounts:
        totals.update(account.get("counts", {}))
    noun = "account" if len(accounts) == 1 else "accounts"
    by_state = ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
    counts = ", ".join(f"{totals[key]} {key}"
                       for key in ("imported", "duplicates", "discarded", "failed"))
    line = f"{len(accounts)} {noun}" + (f": {by_state}" if by_state else "") + f"; {counts}"
    outbox = status.get("outbox")
    if outbox:
        line += f"; outbox {outbox.get('sent', 0)} sent, {outbox.get('failed', 0)} failed"
    if not status.get("ready", True):
        line += "; not ready"
    return line


async def report_status(status: Callable[[], Mapping[str, Any]], *,
                        interval: float | None = None) -> None:
    """Send ``STATUS=<status_line>`` now and whenever it changes (no-op off systemd).

    Looks every ``interval`` seconds (default :data:`STATUS_INTERVAL_SECONDS`).
    """
    if not os.environ.get("NOTIFY_SOCKET"):
        return
    interval = STATUS_INTERVAL_SECONDS if interval is None else interval
    last = None
    while True:
        line = status_line(status())
        if line != last:
            notify(f"STATUS={line}")
            last = line
        await trio.sleep(interval)
