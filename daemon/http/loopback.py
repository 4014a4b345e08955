"""Is a ``Host`` (or an ``Origin``'s authority) a loopback name or address?

The token-less API and the ``/events`` websocket answer only requests a browser page
cannot forge: a loopback ``Host`` defeats DNS rebinding, a loopback ``Origin`` a
cross-site request (:mod:`daemon.http.app`).
"""

from __future__ import annotations

__all__ = ["is_loopback_host"]

import ipaddress


def is_loopback_host(authority: str) -> bool:
    """``localhost``, ``127.x.y.z`` or ``[::1]``, with or without ``:port``."""
    if authority.startswith("["):
        name, bracket, rest = authority[1:].partition("]")
        if not bracket or (rest and not rest[1:].isdigit()) or (rest and rest[0] != ":"):
            return False
    else:
        name, _, port = authority.partition(":")
        if port and not (port.isascii() and port.isdigit()):
            return False
    if name.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
