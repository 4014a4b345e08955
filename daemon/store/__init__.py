"""The store: CRM objects plus the daemon's own tables, in SQLite or PostgreSQL.

Layout::

    base.py        the protocol (Store, Tx) and its records (Obj, StoredFile, RawRecord,
                   OutboxItem, Event)
    opening.py     open_store(url): picks the backend
    url.py         redact_url for logs; URL options (imports no backend)
    transaction.py every statement, once: Transaction, and the Dialect each backend fills
    sqlite.py      the embedded default (one file, one writer): its dialect and connection
    postgres.py    the shared store (psycopg 3 and a small pool): its dialect and pool
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
from daemon.store.opening import open_store
from daemon.store.url import redact_url
