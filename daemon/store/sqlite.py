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
    * The statements are those of :class:`daemon.store.transaction.Transaction`; this
      module holds only SQLite's :data:`SQLITE` dialect, the connection and migrations.
    * Objects live in one table with a JSON ``props`` column. :meth:`SqliteStore.ensure_index`
      adds a partial expression index on ``json_extract(props, '$.<prop>')`` for one
      limetype; lookups repeat that expression and the literal ``limetype = '<limetype>'``
      so the planner picks it. ``json_extract`` maps JSON true to 1, so lookups add a
      ``json_type`` test that keeps ``True`` and ``1`` apart.
    * The connection gets two functions the shared statements call: ``now()`` (the time
      the transaction began, as in PostgreSQL, as ISO 8601 text in UTC with microseconds,
      so text order is time order) and
      ``props_merge(props, ?)`` (a top-level merge in which a null value is stored, unlike
      ``json_patch``, which would delete the key).
    * Per-call overhead is kept low: SQL text is built once per query shape
      (``functools.lru_cache``) and ``sqlite3`` caches the prepared statements; no PRAGMA or
      schema check runs per call.
    * Files are private: a database file postroom creates is 0600 (SQLite gives its
      ``-wal`` and ``-shm`` files the same mode) and the directories it creates are 0700,
      whatever the umask. Existing files and directories keep their modes.

Errors from ``sqlite3`` are translated in one place, :func:`translate` (used by
:func:`map_errors` and by every statement a transaction runs).
"""

from __future__ import annotations

__all__ = ["DEFAULT_BUSY_TIMEOUT_MS", "SQLITE", "SqliteStore", "map_errors", "migrate",
           "translate"]

import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

from daemon.errors import PostroomError, StoreBusyError, StoreError, UniqueViolation
from daemon.store import migrations
from daemon.store.transaction import Dialect, Transaction, index_sql
from daemon.store.values import WhereKind, dumps, loads, utc

DEFAULT_BUSY_TIMEOUT_MS = 5000
_MIN_SQLITE = (3, 24, 0)  # INSERT ... ON CONFLICT

# -- errors -----------------------------------------------------------------------------

_BUSY_CODES = frozenset({
    sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_IOERR, sqlite3.SQLITE_FULL,
    sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOMEM,
    # A read-only file or one that cannot be opened (a missing or read-only directory) is
    # the operator's to fix; the message is fine and must be retried later, not failed.
    sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN,
})
_UNIQUE_CODES = frozenset({sqlite3.SQLITE_CONSTRAINT_UNIQUE, sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY})


def translate(exc: sqlite3.Error) -> PostroomError:
    """The postroom error for a ``sqlite3`` error (the caller raises it ``from exc``).

    * locked/busy, disk full, I/O error, out of memory, read-only or unopenable file ->
      :class:`StoreBusyError` (try again later; the message is not at fault);
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


# -- what SQLite does differently ---------------------------------------------------------

def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


def _ts(value: datetime | None, name: str) -> str | None:
    aware = utc(value, name)
    return None if aware is None else aware.isoformat(timespec="microseconds")


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


class _TransactionClock:
    """``now()`` in the shared statements: the time the current transaction began.

    As PostgreSQL's ``now()``: every row one transaction writes carries the same time, and
    the time is read and formatted once per transaction, not once per statement.
    """

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = _now()

    def start(self) -> None:
        self.value = _now()

    def now(self) -> str:
        return self.value


def _inserted_id(cursor: sqlite3.Cursor) -> int | None:
    return cursor.lastrowid if cursor.rowcount > 0 else None


def _merge_props(stored: str, update: str) -> str:
    """``props_merge(props, ?)``: the stored object with the update's keys set (a null too)."""
    merged = loads(stored)
    merged.update(loads(update))
    return dumps(merged)


_JSON_TYPE_TEST = {
    WhereKind.TRUE: "= 'true'",
    WhereKind.FALSE: "= 'false'",
    WhereKind.NUMBER: "IN ('integer', 'real')",
    WhereKind.TEXT: "= 'text'",
}


def _prop_expr(prop: str) -> str:
    return f"json_extract(props, '$.{prop}')"


def _prop_equals(prop: str, kind: WhereKind) -> str:
    # json_extract maps JSON true to 1: the type test keeps True and 1 apart.
    return f"{_prop_expr(prop)} = ? AND json_type(props, '$.{prop}') {_JSON_TYPE_TEST[kind]}"


def _lookup_param(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value


def _same(sql: str) -> str:
    return sql


#: SQLite's side of :class:`daemon.store.transaction.Dialect`.
SQLITE = Dialect(
    name="sqlite", driver_error=sqlite3.Error, translate=translate, convert_param_style=_same,
    json_param="?", merge_props="props_merge(props, ?)", returning_id="",
    inserted_id=_inserted_id, prop_expr=_prop_expr,
    prop_equals=_prop_equals, lookup_param=_lookup_param, no_limit=-1, max_identifier=None,
    time_param=_ts, time_value=_dt, json_value=loads,
)

#: Translate ``sqlite3`` errors raised inside the block (see :func:`translate`).
map_errors = SQLITE.map_errors


# -- opening and migrating ----------------------------------------------------------------

def _make_private_dirs(directory: str) -> None:
    """Create ``directory`` and its missing parents, each 0700 whatever the umask.

    Directories that already exist are left as they are (``/var/lib`` is not ours).
    """
    missing: list[str] = []
    while not os.path.isdir(directory):
        missing.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    for path in reversed(missing):
        try:
            os.mkdir(path, 0o700)
        except FileExistsError:
            continue  # created meanwhile by someone else: theirs, not ours to chmod
        os.chmod(path, 0o700)  # the umask may have taken bits away


def _create_private_file(path: str) -> None:
    """Create the database file 0600 (whatever the umask) before SQLite opens it.

    SQLite creates the ``-wal`` and ``-shm`` files with the database file's permissions, so
    they are 0600 too. An existing file keeps its mode: the operator may have chosen it.
    """
    _make_private_dirs(os.path.dirname(os.path.abspath(path)))
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _connect(path: str, busy_timeout_ms: int, now: Callable[[], str]) -> sqlite3.Connection:
    """Open the file (creating it and its parent directories, private to this user), set
    the connection's PRAGMAs and register the functions the shared statements call.
    """
    if sqlite3.sqlite_version_info < _MIN_SQLITE:
        raise StoreError(f"SQLite {sqlite3.sqlite_version} is too old: postroom needs "
                         f"{'.'.join(map(str, _MIN_SQLITE))} or newer (ON CONFLICT)")
    if path != ":memory:":
        try:
            _create_private_file(path)
        except OSError as exc:  # e.g. a read-only or unwritable parent directory
            raise StoreBusyError(f"sqlite: cannot create {path}: {exc.strerror}") from exc
    with map_errors():
        conn = sqlite3.connect(path, timeout=busy_timeout_ms / 1000, isolation_level=None,
                               check_same_thread=False, cached_statements=512)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.create_function("now", 0, now)
            conn.create_function("props_merge", 2, _merge_props, deterministic=True)
        except BaseException:
            conn.close()
            raise
    return conn


def _schema_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute("SELECT 1 FROM sqlite_master "
                          "WHERE type = 'table' AND name = 'schema_version'").fetchone()
    if exists is None:
        return 0
    version: int = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version"
                                ).fetchone()[0]
    return version


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
        self._clock = _TransactionClock()
        self._conn: sqlite3.Connection | None = _connect(path, busy_timeout_ms, self._clock.now)
        try:
            migrate(self._conn)
        except BaseException:
            self._conn.close()
            raise

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Run the block in one ``BEGIN IMMEDIATE`` transaction (see ``Store.transaction``).

        Blocks while another thread's transaction runs. Raises :class:`StoreError` when
        called inside a transaction of the same thread (no nesting) or after ``close()``.
        """
        conn = self._acquire()
        try:
            with map_errors():
                conn.execute("BEGIN IMMEDIATE")
            self._clock.start()
            tx = Transaction(conn, SQLITE)
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
        """Create the partial expression index if missing (see ``Store.ensure_index``)."""
        sql = index_sql(SQLITE, limetype, prop, unique)
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

    def __repr__(self) -> str:
        return f"<SqliteStore {self.url_for_logs}>"
