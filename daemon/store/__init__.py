"""The store: CRM objects plus the daemon's own tables, in SQLite or PostgreSQL.

Layout::

    base.py        the protocol (Store, Tx) and its records (Obj, StoredFile, RawRecord,
                   OutboxItem, Event)
    url.py         open_store(url): picks the backend; redact_url for logs
    sqlite.py      the embedded default (one file, one writer)
    postgres.py    the shared store (psycopg 3 and a small pool)
    migrations.py  versioned schema steps for both, applied when a store opens
    values.py      names, lookup values and times as the backends store them
    asyncstore.py  AsyncStore: transactions in Trio worker threads

Typical use from Trio::

    astore = AsyncStore(open_store(config.store))
    person = await astore.run(lambda tx: tx.find_one("person", {"email": address}))
    await astore.aclose()
"""

from __future__ import annotations

__all__ = [
    "AsyncStore",
    "Event",
    "Obj",
    "OutboxItem",
    "RawRecord",
    "Store",
    "StoredFile",
    "Tx",
    "open_store",
    "redact_url",
]

from daemon.store.asyncstore import AsyncStore
from daemon.store.base import Event, Obj, OutboxItem, RawRecord, Store, StoredFile, Tx
from daemon.store.url import open_store, redact_url
