"""Store URLs: naming a store in logs without the password, and reading its options.

This module imports no backend (both import it); :mod:`daemon.store.opening` picks the
backend for a URL.
"""

from __future__ import annotations

__all__ = ["int_option", "redact_url"]

_SECRET_QUERY_KEYS = frozenset({"password", "passfile", "sslpassword"})


def redact_url(url: str) -> str:
    """``url`` with any password (in the userinfo or the query) replaced by ``***``.

    Everything else is kept byte for byte, so ``sqlite:////var/x.db`` stays as written.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        userinfo, _, hostport = authority.rpartition("@")
        if ":" in userinfo:
            userinfo = userinfo.split(":", 1)[0] + ":***"
        authority = f"{userinfo}@{hostport}"
    path, q, query = tail.partition("?")
    if q:
        query = "&".join(_redact_pair(pair) for pair in query.split("&"))
    return f"{scheme}://{authority}{path}{q}{query}"


def _redact_pair(pair: str) -> str:
    key, eq, _ = pair.partition("=")
    return f"{key}=***" if eq and key.lower() in _SECRET_QUERY_KEYS else pair


def int_option(options: dict[str, str], name: str, default: int) -> int:
    """The URL option ``name`` as a non-negative integer, or ``default`` if absent.

    Raises:
        ValueError: the value is not an integer, or is negative.
    """
    if name not in options:
        return default
    try:
        value = int(options[name])
    except ValueError:
        raise ValueError(f"store URL option {name} must be an integer") from None
    if value < 0:
        raise ValueError(f"store URL option {name} must be >= 0")
    return value
