"""Opening a store from its URL: the one place that picks the backend.

Accepted forms::

    sqlite:////var/lib/postroom/postroom.db      absolute path (four slashes)
    sqlite:///postroom.db                        relative to the working directory
    sqlite:///:memory:                           a throwaway in-memory database
    sqlite:///x.db?busy_timeout_ms=50            query options, see SqliteStore
    postgresql://user:pw@host:5432/db?schema=postroom&pool_size=4&busy_timeout_ms=5000
    postgres://...                               same

Unknown SQLite options are refused; PostgreSQL passes options it does not know itself on
to libpq (``sslmode=require`` ...). The backends are imported on demand, so the CLI does
not pay for psycopg when the store is SQLite.
"""

from __future__ import annotations

__all__ = ["open_store"]

from urllib.parse import parse_qsl

from daemon.store.base import Store
from daemon.store.url import int_option, redact_url


def open_store(url: str) -> Store:
    """Open (creating and migrating as needed) the store named by ``url``.

    Args:
        url: ``sqlite:///<path>`` or ``postgresql://...`` (see the module docstring).

    Returns:
        A :class:`~daemon.store.base.Store`; close it with ``close()``.

    Raises:
        ValueError: unknown scheme, malformed URL or unknown option.
        StoreBusyError: the database is locked or unreachable right now.
        StoreError: the database is unusable (not a database, newer schema).
    """
    scheme = url.partition(":")[0].lower()
    if scheme == "sqlite":
        return _open_sqlite(url)
    if scheme in ("postgresql", "postgres"):
        from daemon.store.postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError(f"unknown store URL scheme {scheme!r}: use sqlite:/// or postgresql://")


def _open_sqlite(url: str) -> Store:
    from daemon.store.sqlite import DEFAULT_BUSY_TIMEOUT_MS, SqliteStore

    rest = url[len("sqlite:"):]
    if not rest.startswith("///"):
        raise ValueError("SQLite URLs look like sqlite:///relative.db or sqlite:////abs.db")
    path, _, query = rest[3:].partition("?")
    if not path:
        raise ValueError("SQLite URL has no path")
    options = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query)))
    unknown = set(options) - {"busy_timeout_ms"}
    if unknown:
        raise ValueError(f"unknown SQLite URL option(s): {', '.join(sorted(unknown))}")
    busy_timeout_ms = int_option(options, "busy_timeout_ms", DEFAULT_BUSY_TIMEOUT_MS)
    return SqliteStore(path, busy_timeout_ms=busy_timeout_ms, url_for_logs=redact_url(url))
