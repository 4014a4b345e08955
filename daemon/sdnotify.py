"""systemd's notify protocol (sd_notify(3)), and the watchdog task.

A datagram of ``KEY=VALUE`` lines to ``$NOTIFY_SOCKET``; a leading ``@`` means the
abstract namespace. Without ``$NOTIFY_SOCKET`` (not under systemd) every call is a no-op.
The watchdog pings from a Trio task, so a blocked event loop misses its pings and
systemd restarts the service.
"""

from __future__ import annotations

__all__ = ["notify", "watchdog"]

import os
import socket

import trio


def notify(state: str) -> bool:
    """Send ``state`` (e.g. ``"READY=1"``); return whether a socket was there."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.connect(address)
        sock.sendall(state.encode())
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
