"""The embedded store: one SQLite file, one connection, one writer at a time.

Design notes
    * One ``sqlite3`` connection, opened with ``check_same_thread=False`` because Trio's
      worker threads have no affinity; a :class:`threading.Lock` makes transactions take
      turns (``AsyncStore`` already serialises them with a ``CapacityLimiter(1)``; the lock
      keeps direct users such as the CLI safe too).
    * WAL journal with ``synchronous=NORMAL``: a commit does not fsync (only checkpoints
      do), so a power cut may lose the last transactions but never corrupts the file. The
      intake design tolerates that: an unacknowledged message is fetched again.
    * Every transaction starts with ``BEGIN IMMEDIATE``: it takes the write lock up front,
      so waiting for another process happens in ``busy_timeout`` at ``BEGIN`` instead of
      failing half-way through with a lock upgrade that no timeout can resolve.
    * Objects live in one table with a JSON ``props`` column. :meth:`SqliteStore.ensure_index`
      adds a partial expression index on ``json_extract(props, '$.<prop>')`` for one
      limetype; :meth:`SqliteTx.find` repeats that expression and the literal
      ``limetype = '<limetype>'`` so the planner picks it. ``json_extract`` maps JSON true
      to 1, so lookups add a ``json_type`` test that keeps ``True`` and ``1`` apart.
    * Per-call overhead is kept low: SQL text is built once per query shape
      (``functools.lru_cache``) and ``sqlite3`` caches the prepared statements; no PRAGMA or
      schema check runs per call.

Errors from ``sqlite3`` are translated in one place, :func:`translate` (used by
:func:`map_errors` and by every statement a :class:`SqliteTx` runs).
"""

from __future__ import annotations

__all__ = ["DEFAULT_BUSY_TIMEOUT_MS", "SqliteStore", "SqliteTx", "map_errors", "migrate",
           "translate"]

import os
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from daemon.errors import PostroomError, StoreBusyError, StoreError, UniqueViolation
from daemon.store import migrations
from daemon.store.base import Event, Obj, OutboxItem, RawRecord, StoredFile
from daemon.store.values import WhereKind, check_name, dumps, loads, utc, where_kind

DEFAULT_BUSY_TIMEOUT_MS = 5000

# -- errors -----------------------------------------------------------------------------

_BUSY_CODES = frozenset({
    sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOMEM,
})
_UNIQUE_CODES = frozenset({sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY})


def translate(exc: sqlite3.Error) -> PostroomError:
    """The postroom error for a ``sqlite3`` error (the caller raises it ``from exc``).

    * locked/busy, disk full, I/O error, out of memory -> :class:`StoreBusyError`;
    * a UNIQUE or PRIMARY KEY constraint -> :class:`UniqueViolation`;
    * anything else (schema mismatch, misuse, corruption) -> :class:`StoreError`.

    SQLite's messages name tables and indexes, never values, so they are kept.
    """
    code = getattr(exc, "sqlite_errorcode", None)
    message = f"sqlite: {exc}"
    if isinstance(exc, sqlite3.IntegrityError) and code in _UNIQUE_CODES:
        return UniqueViolation(message)
    if code is not None and code & 0xFF in _BUSY_CODES:
        return StoreBusyError(message)
    if "database is locked" in str(exc):  # raised by the driver without an error code
        return StoreBusyError(message)
    return StoreError(message)


@contextmanager
def map_errors() -> Iterator[None]:
    """Translate ``sqlite3`` errors raised inside the block (see :func:`translate`)."""
    try:
        yield
    except sqlite3.Error as exc:
        raise translate(exc) from exc


# -- values -----------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _ts(value: datetime | None, name: str) -> str | None:
    aware = utc(value, name)
    return None if aware is None else aware.isoformat(timespec="microseconds")


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


_VALID_LIMETYPES: set[str] = set()


def _limetype(name: str) -> str:
    if name not in _VALID_LIMETYPES:
        _VALID_LIMETYPES.add(check_name(name, "limetype"))
    return name


# -- SQL --------------------------------------------------------------------------------

_JSON_TYPE_TEST = {
    WhereKind.TRUE: "= 'true'",
    WhereKind.FALSE: "= 'false'",
    WhereKind.NUMBER: "IN ('integer', 'real')",
    WhereKind.TEXT: "= 'text'",
}


def _prop_expr(prop: str) -> str:
    return f"json_extract(props, '$.{prop}')"


@lru_cache(maxsize=2048)
def _find_sql(limetype: str, terms: tuple[tuple[str, WhereKind], ...],
              newest_first: bool) -> str:
    """``SELECT id, props ...`` for one query shape; parameters: values, then LIMIT."""
    clauses = [f"limetype = '{check_name(limetype, 'limetype')}'"]
    for prop, kind in terms:
        expr = _prop_expr(check_name(prop, "property"))
        if kind is WhereKind.NULL:
            clauses.append(f"{expr} IS NULL")
        else:
            clauses.append(f"{expr} = ?")
            clauses.append(f"json_type(props, '$.{prop}') {_JSON_TYPE_TEST[kind]}")
    order = "DESC" if newest_first else "ASC"
    return (f"SELECT id, props FROM objects WHERE {' AND '.join(clauses)} "
            f"ORDER BY id {order} LIMIT ?")


def _find_query(limetype: str, where: Mapping[str, Any] | None, limit: int | None,
                newest_first: bool) -> tuple[str, list[Any]]:
    """The SQL text and parameters of :meth:`SqliteTx.find`."""
    terms: list[tuple[str, WhereKind]] = []
    params: list[Any] = []
    for prop, value in (where or {}).items():
        kind = where_kind(prop, value)
        terms.append((prop, kind))
        if kind is not WhereKind.NULL:
            params.append(int(value) if isinstance(value, bool) else value)
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    params.append(-1 if limit is None else limit)
    return _find_sql(limetype, tuple(terms), newest_first), params


def _index_sql(limetype: str, prop: str, unique: bool) -> str:
    check_name(limetype, "limetype")
    check_name(prop, "property")
    kind, prefix = ("UNIQUE INDEX", "ux") if unique else ("INDEX", "ix")
    return (f'CREATE {kind} IF NOT EXISTS "{prefix}_obj_{limetype}__{prop}" '
            f"ON objects ({_prop_expr(prop)}) WHERE limetype = '{limetype}'")


_RAW_COLUMNS = ("source_key, account, raw, status, message_id, sha256, error, "
                "conversation_message_id, folder, received_at, created_at")
_OUTBOX_COLUMNS = ("account, recipient, message_id, raw, kind, status, attempts, "
                   "next_attempt_at, last_error, message_follower_id, "
                   "conversation_message_id, id, created_at, sent_at")


@lru_cache(maxsize=4)
def _list_raw_sql(by_account: bool, by_status: bool) -> str:
    clauses = [c for c, on in (("account = ?", by_account), ("status = ?", by_status)) if on]
    where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
    return f"SELECT {_RAW_COLUMNS} FROM raw_messages {where}ORDER BY id LIMIT ?"


def _raw_record(row: Sequence[Any]) -> RawRecord:
    return RawRecord(*row[:9], received_at=_dt(row[9]), created_at=_dt(row[10]))


def _outbox_item(row: Sequence[Any]) -> OutboxItem:
    return OutboxItem(*row[:7], _dt(row[7]), *row[8:12], _dt(row[12]), _dt(row[13]))


class _Finished:
    """Stands in for the connection once a transaction is over."""

    def execute(self, *args: Any) -> Any:
        raise StoreError("the transaction is finished; open a new one")


_FINISHED = _Finished()


# -- transaction ------------------------------------------------------------------------

class SqliteTx:
    """The operations of one SQLite transaction (see :class:`daemon.store.base.Tx`).

    A constraint error fails only its statement: the transaction stays usable, so a caller
    may catch :class:`UniqueViolation` and carry on. Using the object after the
    transaction ended raises :class:`StoreError`.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn: sqlite3.Connection | _Finished = conn

    def _x(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self._conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise translate(exc) from exc

    def _finish(self) -> None:
        self._conn = _FINISHED

    # -- objects ---------------------------------------------------------------------
    def create(self, limetype: str, props: Mapping[str, Any]) -> int:
        now = _now()
        cur = self._x("INSERT INTO objects (limetype, props, created_at, updated_at) "
                      "VALUES (?, ?, ?, ?)", (_limetype(limetype), dumps(props), now, now))
        return cur.lastrowid  # type: ignore[return-value]

    def update(self, limetype: str, id: int, props: Mapping[str, Any]) -> None:
        row = self._x("SELECT props FROM objects WHERE id = ? AND limetype = ?",
                      (id, limetype)).fetchone()
        if row is None:
            raise KeyError(f"no {limetype} with id {id}")
        merged = loads(row[0])
        merged.update(props)
        self._x("UPDATE objects SET props = ?, updated_at = ? WHERE id = ?",
                (dumps(merged), _now(), id))

    def get(self, limetype: str, id: int) -> Obj | None:
        row = self._x("SELECT props FROM objects WHERE id = ? AND limetype = ?",
                      (id, limetype)).fetchone()
        return None if row is None else Obj(limetype, id, loads(row[0]))

    def find(self, limetype: str, where: Mapping[str, Any] | None = None, *,
             limit: int | None = None, newest_first: bool = False) -> list[Obj]:
        sql, params = _find_query(limetype, where, limit, newest_first)
        return [Obj(limetype, id, loads(props)) for id, props in self._x(sql, params)]

    def find_one(self, limetype: str, where: Mapping[str, Any]) -> Obj | None:
        found = self.find(limetype, where, limit=1)
        return found[0] if found else None

    def delete(self, limetype: str, id: int) -> None:
        self._x("DELETE FROM objects WHERE id = ? AND limetype = ?", (id, limetype))

    # -- files -----------------------------------------------------------------------
    def put_file(self, data: bytes, filename: str, content_type: str) -> int:
        cur = self._x("INSERT INTO files (filename, content_type, data, created_at) "
                      "VALUES (?, ?, ?, ?)", (filename, content_type, data, _now()))
        return cur.lastrowid  # type: ignore[return-value]

    def get_file(self, id: int) -> StoredFile | None:
        row = self._x("SELECT id, filename, content_type, data, created_at FROM files "
                      "WHERE id = ?", (id,)).fetchone()
        return None if row is None else StoredFile(*row[:4], created_at=_dt(row[4]))

    # -- raw messages ----------------------------------------------------------------
    def add_raw(self, record: RawRecord) -> None:
        self._x(f"INSERT INTO raw_messages ({_RAW_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.source_key, record.account, record.raw, record.status,
                 record.message_id, record.sha256, record.error,
                 record.conversation_message_id, record.folder,
                 _ts(record.received_at, "received_at"),
                 _ts(record.created_at, "created_at") or _now()))

    def get_raw(self, source_key: str) -> RawRecord | None:
        row = self._x(f"SELECT {_RAW_COLUMNS} FROM raw_messages WHERE source_key = ?",
                      (source_key,)).fetchone()
        return None if row is None else _raw_record(row)

    def set_raw_result(self, source_key: str, *, status: str, error: str | None = None,
                       conversation_message_id: int | None = None) -> None:
        cur = self._x("UPDATE raw_messages SET status = ?, error = ?, "
                      "conversation_message_id = ? WHERE source_key = ?",
                      (status, error, conversation_message_id, source_key))
        if cur.rowcount == 0:
            raise KeyError(f"no raw message {source_key!r}")

    def find_raw_by_message_id(self, account: str, message_id: str) -> RawRecord | None:
        row = self._x(f"SELECT {_RAW_COLUMNS} FROM raw_messages "
                      "WHERE account = ? AND message_id = ? ORDER BY id LIMIT 1",
                      (account, message_id)).fetchone()
        return None if row is None else _raw_record(row)

    def find_raw_by_sha256(self, account: str, sha256: str) -> RawRecord | None:
        row = self._x(f"SELECT {_RAW_COLUMNS} FROM raw_messages "
                      "WHERE account = ? AND sha256 = ? ORDER BY id LIMIT 1",
                      (account, sha256)).fetchone()
        return None if row is None else _raw_record(row)

    def list_raw(self, *, account: str | None = None, status: str | None = None,
                 limit: int = 100) -> list[RawRecord]:
        params = [p for p in (account, status) if p is not None]
        sql = _list_raw_sql(account is not None, status is not None)
        return [_raw_record(row) for row in self._x(sql, (*params, limit))]

    # -- checkpoints -----------------------------------------------------------------
    def get_checkpoint(self, account: str, key: str) -> str | None:
        row = self._x("SELECT value FROM checkpoints WHERE account = ? AND key = ?",
                      (account, key)).fetchone()
        return None if row is None else row[0]

    def set_checkpoint(self, account: str, key: str, value: str) -> None:
        self._x("INSERT INTO checkpoints (account, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (account, key) DO UPDATE SET value = excluded.value",
                (account, key, value))

    def delete_checkpoints(self, account: str, prefix: str) -> None:
        self._x("DELETE FROM checkpoints WHERE account = ? AND substr(key, 1, ?) = ?",
                (account, len(prefix), prefix))

    # -- sequences -------------------------------------------------------------------
    def next_number(self, name: str) -> int:
        row = self._x("INSERT INTO sequences (name, value) VALUES (?, 1) "
                      "ON CONFLICT (name) DO UPDATE SET value = sequences.value + 1 "
                      "RETURNING value", (name,)).fetchone()
        return int(row[0])

    # -- outbox ----------------------------------------------------------------------
    def enqueue(self, item: OutboxItem) -> int:
        cur = self._x(
            "INSERT INTO outbox (account, recipient, message_id, raw, kind, status, "
            "attempts, next_attempt_at, last_error, message_follower_id, "
            "conversation_message_id, created_at, sent_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (item.account, item.recipient, item.message_id, item.raw, item.kind,
             item.status, item.attempts, _ts(item.next_attempt_at, "next_attempt_at"),
             item.last_error, item.message_follower_id, item.conversation_message_id,
             _ts(item.created_at, "created_at") or _now(), _ts(item.sent_at, "sent_at")))
        return cur.lastrowid  # type: ignore[return-value]

    def due(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        rows = self._x(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE status = 'queued' "
                       "AND (next_attempt_at IS NULL OR next_attempt_at <= ?) "
                       "ORDER BY id LIMIT ?", (_ts(now, "now"), limit))
        return [_outbox_item(row) for row in rows]

    def get_outbox(self, id: int) -> OutboxItem | None:
        row = self._x(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE id = ?", (id,)).fetchone()
        return None if row is None else _outbox_item(row)

    def _update_outbox(self, id: int, assignments: str, params: Sequence[Any]) -> None:
        cur = self._x(f"UPDATE outbox SET attempts = attempts + 1, {assignments} WHERE id = ?",
                      (*params, id))
        if cur.rowcount == 0:
            raise KeyError(f"no outbox item {id}")

    def mark_sent(self, id: int, when: datetime) -> None:
        self._update_outbox(id, "status = 'sent', sent_at = ?", (_ts(when, "when"),))

    def mark_retry(self, id: int, error: str, next_attempt_at: datetime) -> None:
        self._update_outbox(id, "last_error = ?, next_attempt_at = ?",
                            (error, _ts(next_attempt_at, "next_attempt_at")))

    def mark_failed(self, id: int, error: str) -> None:
        self._update_outbox(id, "status = 'failed', last_error = ?", (error,))

    def outbox_by_status(self, status: str, limit: int = 100) -> list[OutboxItem]:
        rows = self._x(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE status = ? "
                       "ORDER BY id LIMIT ?", (status, limit))
        return [_outbox_item(row) for row in rows]

    def count_outbox(self, status: str) -> int:
        row = self._x("SELECT count(*) FROM outbox WHERE status = ?", (status,)).fetchone()
        return int(row[0])

    def release_outbox(self, id: int) -> bool:
        cur = self._x("UPDATE outbox SET status = 'queued', next_attempt_at = NULL "
                      "WHERE id = ? AND status = 'held'", (id,))
        return cur.rowcount == 1

    def find_outbox_by_message_id(self, message_id: str) -> OutboxItem | None:
        row = self._x(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE message_id = ?",
                      (message_id,)).fetchone()
        return None if row is None else _outbox_item(row)

    # -- events ----------------------------------------------------------------------
    def add_event(self, kind: str, account: str | None, data: Mapping[str, Any]) -> int:
        cur = self._x("INSERT INTO events (kind, account, data, created_at) VALUES (?, ?, ?, ?)",
                      (kind, account, dumps(data), _now()))
        return cur.lastrowid  # type: ignore[return-value]

    def events_since(self, after_id: int, limit: int = 100) -> list[Event]:
        rows = self._x("SELECT id, kind, account, data, created_at FROM events "
                       "WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))
        return [Event(id, kind, account, loads(data), _dt(created))
                for id, kind, account, data, created in rows]


# -- opening and migrating ----------------------------------------------------------------

def _connect(path: str, busy_timeout_ms: int) -> sqlite3.Connection:
    """Open the file (creating parent directories) and set the connection's PRAGMAs."""
    if path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with map_errors():
        conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None,
                               check_same_thread=False, cached_statements=512)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
        except BaseException:
            conn.close()
            raise
    return conn


def _schema_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute("SELECT 1 FROM sqlite_master "
                          "WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if exists is None:
        return 0
    return conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


def _rollback(conn: sqlite3.Connection) -> None:
    # SQLite may already have rolled back by itself (disk full, I/O error).
    if conn.in_transaction:
        with map_errors():
            conn.execute("ROLLBACK")


def migrate(conn: sqlite3.Connection,
            steps: Sequence[migrations.Migration] = migrations.SQLITE) -> int:
    """Bring the database up to the last of ``steps`` in one transaction; return its version.

    An up-to-date database costs one read and takes no write lock.

    Raises:
        StoreError: the database is newer than ``steps``.
        StoreBusyError: the database stayed locked past the busy timeout.
    """
    with map_errors():
        if not migrations.pending(steps, _schema_version(conn)):
            return len(steps)
        conn.execute("BEGIN IMMEDIATE")
        try:
            for step in migrations.pending(steps, _schema_version(conn)):
                for statement in step.statements:
                    conn.execute(statement)
                conn.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                             (step.version, _now()))
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
    return len(steps)


# -- the store ----------------------------------------------------------------------------

class SqliteStore:
    """A :class:`daemon.store.base.Store` in one SQLite file.

    Args:
        path: the database file (created with its parent directories), or ``:memory:``.
        busy_timeout_ms: how long a transaction waits for another process's write lock
            before raising :class:`StoreBusyError`.
        url_for_logs: how logs name this store (defaults to ``sqlite:///<path>``).

    Raises:
        StoreBusyError: the file is locked past the busy timeout, or the disk is full.
        StoreError: the file is not a usable database, or is newer than this code.
    """

    #: How many transactions may run at once; AsyncStore sizes its limiter from this.
    max_concurrency = 1

    def __init__(self, path: str, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
                 url_for_logs: str | None = None) -> None:
        self.path = path
        self.url_for_logs = url_for_logs or f"sqlite:///{path}"
        self._lock = threading.Lock()
        self._owner: int | None = None
        self._conn: sqlite3.Connection | None = _connect(path, busy_timeout_ms)
        try:
            migrate(self._conn)
        except BaseException:
            self._conn.close()
            raise

    def __repr__(self) -> str:
        return f"<SqliteStore {self.url_for_logs}>"

    @contextmanager
    def transaction(self) -> Iterator[SqliteTx]:
        """Run the block in one ``BEGIN IMMEDIATE`` transaction (see ``Store.transaction``).

        Blocks while another thread's transaction runs. Raises :class:`StoreError` when
        called inside a transaction of the same thread (no nesting) or after ``close()``.
        """
        conn = self._acquire()
        try:
            with map_errors():
                conn.execute("BEGIN IMMEDIATE")
            tx = SqliteTx(conn)
            try:
                yield tx
                tx._finish()
                with map_errors():
                    conn.execute("COMMIT")
            except BaseException:
                tx._finish()
                _rollback(conn)
                raise
        finally:
            self._release()

    def ensure_index(self, limetype: str, prop: str, *, unique: bool = False) -> None:
        """Create the partial expression index for ``limetype.prop`` if it is missing.

        Raises:
            ValueError: a name does not match ``[A-Za-z0-9_]+``.
            UniqueViolation: ``unique`` and existing objects already share a value.
        """
        sql = _index_sql(limetype, prop, unique)
        with self.transaction() as tx:
            tx._x(sql)

    def close(self) -> None:
        """Close the connection (waits for a running transaction). Idempotent."""
        if self._owner == threading.get_ident():
            raise StoreError("cannot close the store inside its own transaction")
        with self._lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                with suppress(sqlite3.Error):  # only a planner hint; closing matters more
                    conn.execute("PRAGMA optimize")
                conn.close()

    def _acquire(self) -> sqlite3.Connection:
        if self._owner == threading.get_ident():
            raise StoreError("a transaction is already open in this thread (no nesting)")
        self._lock.acquire()
        if self._conn is None:
            self._lock.release()
            raise StoreError(f"store {self.url_for_logs} is closed")
        self._owner = threading.get_ident()
        return self._conn

    def _release(self) -> None:
        self._owner = None
        self._lock.release()
