"""Versioned schema migrations for both stores, kept in code.

Each backend has a tuple of :class:`Migration` with versions 1, 2, 3, ... Opening a store
applies the ones newer than the database's ``schema_version`` in order, inside one
transaction, so a crash mid-migration leaves the old schema intact. Reopening an up-to-date
database costs one query. A database newer than the code is refused rather than written to.

Rules for adding a migration: append, never edit a released one; add it to both tuples
(the contract tests run against both); keep each statement separate (no multi-statement
strings: ``sqlite3`` would commit on ``executescript``).
"""

from __future__ import annotations

__all__ = ["POSTGRES", "SQLITE", "Migration", "pending"]

from collections.abc import Sequence
from dataclasses import dataclass

from daemon.errors import StoreError


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema step: ``statements`` run in order; ``version`` is recorded after them."""

    version: int
    description: str
    statements: tuple[str, ...]


def pending(migrations: Sequence[Migration], current: int) -> list[Migration]:
    """The migrations to apply to a database at version ``current``, in order.

    Raises:
        StoreError: the database is newer than this code, or ``migrations`` is not
            numbered 1, 2, 3, ...
    """
    versions = [m.version for m in migrations]
    if versions != list(range(1, len(migrations) + 1)):
        raise StoreError(f"migrations must be numbered 1..n, got {versions}")
    if current > len(migrations):
        raise StoreError(
            f"database schema version {current} is newer than this postroom "
            f"(knows up to {len(migrations)}); upgrade postroom"
        )
    return list(migrations[current:])


# -- SQLite ---------------------------------------------------------------------------
# Times are ISO 8601 text in UTC with microseconds ("2024-05-01T12:00:00.000000+00:00"),
# so text order is time order. Objects use AUTOINCREMENT so a deleted object's id is never
# handed out again (a stale relation must not start pointing at a new object).

SQLITE: tuple[Migration, ...] = (
    Migration(1, "objects, raw messages, checkpoints", (
        """CREATE TABLE schema_version (
            version INTEGER PRIMARY KEY,
            applied_at TEXT NOT NULL)""",
        """CREATE TABLE objects (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            limetype TEXT NOT NULL,
            props TEXT NOT NULL,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL)""",
        "CREATE INDEX objects_limetype ON objects (limetype, id)",
        """CREATE TABLE raw_messages (
            id INTEGER PRIMARY KEY,
            source_key TEXT NOT NULL UNIQUE,
            account TEXT NOT NULL,
            raw BLOB NOT NULL,
            status TEXT NOT NULL,
            message_id TEXT,
            sha256 TEXT,
            error TEXT,
            conversation_message_id INTEGER,
            folder TEXT,
            received_at TEXT,
            created_at TEXT NOT NULL)""",
        "CREATE INDEX raw_messages_message_id ON raw_messages (account, message_id)",
        "CREATE INDEX raw_messages_sha256 ON raw_messages (account, sha256)",
        "CREATE INDEX raw_messages_status ON raw_messages (status, id)",
        """CREATE TABLE checkpoints (
            account TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL,
            PRIMARY KEY (account, key)) WITHOUT ROWID""",
    )),
    Migration(2, "outbox and event log", (
        """CREATE TABLE outbox (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            account TEXT NOT NULL,
            recipient TEXT NOT NULL,
            message_id TEXT NOT NULL UNIQUE,
            raw BLOB NOT NULL,
            kind TEXT NOT NULL,
            status TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt_at TEXT,
            last_error TEXT,
            message_follower_id INTEGER,
            conversation_message_id INTEGER,
            created_at TEXT NOT NULL,
            sent_at TEXT)""",
        "CREATE INDEX outbox_due ON outbox (status, next_attempt_at)",
        """CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            kind TEXT NOT NULL,
            account TEXT,
            data TEXT NOT NULL,
            created_at TEXT NOT NULL)""",
    )),
    Migration(3, "files behind document and embedded-file objects", (
        """CREATE TABLE files (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            filename TEXT NOT NULL,
            content_type TEXT NOT NULL,
            data BLOB NOT NULL,
            created_at TEXT NOT NULL)""",
    )),
    Migration(4, "named counters: conversation parents' human-facing numbers", (
        """CREATE TABLE sequences (
            name TEXT PRIMARY KEY,
            value INTEGER NOT NULL) WITHOUT ROWID""",
    )),
    Migration(5, "nodes, account leases with fencing epochs, outbox claims, kicks", (
        """CREATE TABLE nodes (
            node_id TEXT PRIMARY KEY,
            started_at TEXT NOT NULL,
            expires_at TEXT NOT NULL)""",
        """CREATE TABLE account_leases (
            account TEXT PRIMARY KEY,
            owner TEXT NOT NULL,
            epoch INTEGER NOT NULL,
            acquired_at TEXT NOT NULL,
            expires_at TEXT NOT NULL)""",
        """CREATE TABLE lease_history (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            account TEXT NOT NULL,
            owner TEXT NOT NULL,
            epoch INTEGER NOT NULL,
            acquired_at TEXT NOT NULL,
            previous_owner TEXT,
            previous_expires_at TEXT)""",
        "ALTER TABLE outbox ADD COLUMN locked_by TEXT",
        "ALTER TABLE outbox ADD COLUMN locked_until TEXT",
        """CREATE TABLE account_kicks (
            account TEXT PRIMARY KEY,
            requested_at TEXT NOT NULL)""",
    )),
)


# -- PostgreSQL -------------------------------------------------------------------------
# Same tables; identity columns never reuse ids; props are jsonb so lookups compare JSON
# values by type.

POSTGRES: tuple[Migration, ...] = (
    Migration(1, "objects, raw messages, checkpoints", (
        """CREATE TABLE schema_version (
            version integer PRIMARY KEY,
            applied_at timestamptz NOT NULL DEFAULT now())""",
        """CREATE TABLE objects (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            limetype text NOT NULL,
            props jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now())""",
        "CREATE INDEX objects_limetype ON objects (limetype, id)",
        """CREATE TABLE raw_messages (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            source_key text NOT NULL UNIQUE,
            account text NOT NULL,
            raw bytea NOT NULL,
            status text NOT NULL,
            message_id text,
            sha256 text,
            error text,
            conversation_message_id bigint,
            folder text,
            received_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now())""",
        "CREATE INDEX raw_messages_message_id ON raw_messages (account, message_id)",
        "CREATE INDEX raw_messages_sha256 ON raw_messages (account, sha256)",
        "CREATE INDEX raw_messages_status ON raw_messages (status, id)",
        """CREATE TABLE checkpoints (
            account text NOT NULL,
            key text NOT NULL,
            value text NOT NULL,
            PRIMARY KEY (account, key))""",
    )),
    Migration(2, "outbox and event log", (
        """CREATE TABLE outbox (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            account text NOT NULL,
            recipient text NOT NULL,
            message_id text NOT NULL UNIQUE,
            raw bytea NOT NULL,
            kind text NOT NULL,
            status text NOT NULL,
            attempts integer NOT NULL,
            next_attempt_at timestamptz,
            last_error text,
            message_follower_id bigint,
            conversation_message_id bigint,
            created_at timestamptz NOT NULL DEFAULT now(),
            sent_at timestamptz)""",
        "CREATE INDEX outbox_due ON outbox (status, next_attempt_at)",
        """CREATE TABLE events (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            kind text NOT NULL,
            account text,
            data jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now())""",
    )),
    Migration(3, "files behind document and embedded-file objects", (
        """CREATE TABLE files (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            filename text NOT NULL,
            content_type text NOT NULL,
            data bytea NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now())""",
    )),
    Migration(4, "named counters: conversation parents' human-facing numbers", (
        """CREATE TABLE sequences (
            name text PRIMARY KEY,
            value bigint NOT NULL)""",
    )),
    Migration(5, "nodes, account leases with fencing epochs, outbox claims, kicks", (
        """CREATE TABLE nodes (
            node_id text PRIMARY KEY,
            started_at timestamptz NOT NULL,
            expires_at timestamptz NOT NULL)""",
        """CREATE TABLE account_leases (
            account text PRIMARY KEY,
            owner text NOT NULL,
            epoch bigint NOT NULL,
            acquired_at timestamptz NOT NULL,
            expires_at timestamptz NOT NULL)""",
        """CREATE TABLE lease_history (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            account text NOT NULL,
            owner text NOT NULL,
            epoch bigint NOT NULL,
            acquired_at timestamptz NOT NULL,
            previous_owner text,
            previous_expires_at timestamptz)""",
        "ALTER TABLE outbox ADD COLUMN locked_by text",
        "ALTER TABLE outbox ADD COLUMN locked_until timestamptz",
        """CREATE TABLE account_kicks (
            account text PRIMARY KEY,
            requested_at timestamptz NOT NULL)""",
    )),
)
