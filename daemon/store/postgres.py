"""The shared store: PostgreSQL through sync psycopg 3 and a small connection pool.

Design notes
    * psycopg's async interface is asyncio-only, so the store is synchronous and runs in
      Trio worker threads (:class:`daemon.store.AsyncStore` sizes its limiter to the pool,
      ``max_concurrency``). Connections are in autocommit mode; every transaction is an
      explicit ``BEGIN ... COMMIT`` block.
    * ``props`` is ``jsonb``. A lookup compares ``NULLIF(props -> 'prop', 'null'::jsonb)``
      with a jsonb parameter, so values keep their JSON type (``true`` is not ``1``) and a
      JSON null reads as SQL NULL exactly like a missing property (as in SQLite, where
      ``json_extract`` does the same). :meth:`PostgresStore.ensure_index` indexes that very
      expression, partial on ``limetype = '<limetype>'``; a unique index therefore ignores
      missing and null values.
    * A failed statement aborts a PostgreSQL transaction. So that callers can catch
      :class:`UniqueViolation` and carry on (as SQLite allows), inserts use
      ``ON CONFLICT DO NOTHING`` and report the conflict themselves, and updates of a
      limetype with a unique index run inside a savepoint. (A unique index created by
      another node after this store opened is not known here: a violation still raises
      UniqueViolation, but leaves the transaction aborted.)
    * ``?schema=name`` creates the schema if needed and puts it alone on the
      ``search_path``: tests use a throwaway schema and drop it afterwards.
    * Sessions run with ``TimeZone=UTC`` (times come back aware, in UTC) and
      ``lock_timeout`` = ``busy_timeout_ms``, so a row lock held by another node turns into
      :class:`StoreBusyError` instead of a hang, as in SQLite.
    * Event ids come from an identity column: with several nodes writing, a transaction
      may commit a lower id after a reader has moved past it. Readers of
      ``events_since`` on a multi-node store should re-read a small window.

Errors from psycopg are translated in one place, :func:`translate`.
"""

from __future__ import annotations

__all__ = ["DEFAULT_POOL_SIZE", "PostgresStore", "PostgresTx", "map_errors", "migrate",
           "translate"]

import hashlib
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import lru_cache
from typing import Any

import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import set_json_loads

from daemon.errors import PostroomError, StoreBusyError, StoreError, UniqueViolation
from daemon.store import migrations
from daemon.store.base import Event, Obj, OutboxItem, RawRecord, StoredFile
from daemon.store.url import int_option, redact_url
from daemon.store.values import WhereKind, check_name, dumps, loads, utc, where_kind

DEFAULT_POOL_SIZE = 4
DEFAULT_BUSY_TIMEOUT_MS = 5000
DEFAULT_CONNECT_TIMEOUT_S = 5
_OUR_OPTIONS = ("schema", "pool_size", "busy_timeout_ms")
_LOCK_KEY = 0x706F7374726F6F6D  # "postroom": serialises migrations and index creation
_MAX_IDENTIFIER = 63


# -- errors -----------------------------------------------------------------------------

def _first_line(exc: psycopg.Error) -> str:
    primary = getattr(exc.diag, "message_primary", None)
    return primary or (str(exc).splitlines() or [type(exc).__name__])[0]


def translate(exc: psycopg.Error) -> PostroomError:
    """The postroom error for a psycopg error (the caller raises it ``from exc``).

    * unique violation -> :class:`UniqueViolation` (named by its constraint, no values);
    * a closed pool -> :class:`StoreError` (misuse: the store was closed);
    * connection lost, pool exhausted, lock timeout, deadlock, serialisation failure, disk
      full, admin shutdown (all ``OperationalError``) -> :class:`StoreBusyError`;
    * anything else -> :class:`StoreError`.

    Only the primary message is kept: PostgreSQL's DETAIL lines quote row values.
    """
    if isinstance(exc, psycopg.errors.UniqueViolation):
        return UniqueViolation(f"postgresql: unique constraint {exc.diag.constraint_name} "
                               "violated")
    if isinstance(exc, psycopg_pool.PoolClosed):
        return StoreError("postgresql: the store is closed")
    if isinstance(exc, psycopg.OperationalError):
        return StoreBusyError(f"postgresql: {_first_line(exc)}")
    return StoreError(f"postgresql: {_first_line(exc)}")


@contextmanager
def map_errors() -> Iterator[None]:
    """Translate psycopg errors raised inside the block (see :func:`translate`)."""
    try:
        yield
    except psycopg.Error as exc:
        raise translate(exc) from exc


# -- SQL --------------------------------------------------------------------------------

def _prop_expr(prop: str) -> str:
    return f"NULLIF(props -> '{prop}', 'null'::jsonb)"


@lru_cache(maxsize=2048)
def _find_sql(limetype: str, terms: tuple[tuple[str, WhereKind], ...],
              newest_first: bool) -> str:
    """``SELECT id, props ...`` for one query shape; parameters: values, then LIMIT."""
    clauses = [f"limetype = '{check_name(limetype, 'limetype')}'"]
    for prop, kind in terms:
        expr = _prop_expr(check_name(prop, "property"))
        clauses.append(f"{expr} IS NULL" if kind is WhereKind.NULL else f"{expr} = %s::jsonb")
    order = "DESC" if newest_first else "ASC"
    return (f"SELECT id, props FROM objects WHERE {' AND '.join(clauses)} "
            f"ORDER BY id {order} LIMIT %s")


def _find_query(limetype: str, where: Mapping[str, Any] | None, limit: int | None,
                newest_first: bool) -> tuple[str, list[Any]]:
    """The SQL text and parameters of :meth:`PostgresTx.find`."""
    terms: list[tuple[str, WhereKind]] = []
    params: list[Any] = []
    for prop, value in (where or {}).items():
        kind = where_kind(prop, value)
        terms.append((prop, kind))
        if kind is not WhereKind.NULL:
            params.append(dumps(value))
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    params.append(limit)
    return _find_sql(limetype, tuple(terms), newest_first), params


def _index_name(prefix: str, limetype: str, prop: str) -> str:
    name = f"{prefix}_obj_{limetype}__{prop}"
    if len(name) <= _MAX_IDENTIFIER:
        return name
    # PostgreSQL would truncate, and two long names could then collide silently.
    return f"{prefix}_obj_{hashlib.sha1(f'{limetype}.{prop}'.encode()).hexdigest()[:24]}"


def _index_sql(limetype: str, prop: str, unique: bool) -> str:
    check_name(limetype, "limetype")
    check_name(prop, "property")
    kind, prefix = ("UNIQUE INDEX", "ux") if unique else ("INDEX", "ix")
    return (f'CREATE {kind} IF NOT EXISTS "{_index_name(prefix, limetype, prop)}" '
            f"ON objects (({_prop_expr(prop)})) WHERE limetype = '{limetype}'")


_RAW_COLUMNS = ("source_key, account, raw, status, message_id, sha256, error, "
                "conversation_message_id, folder, received_at, created_at")
_OUTBOX_COLUMNS = ("account, recipient, message_id, raw, kind, status, attempts, "
                   "next_attempt_at, last_error, message_follower_id, "
                   "conversation_message_id, id, created_at, sent_at")


@lru_cache(maxsize=4)
def _list_raw_sql(by_account: bool, by_status: bool) -> str:
    clauses = [c for c, on in (("account = %s", by_account), ("status = %s", by_status)) if on]
    where = f"WHERE {' AND '.join(clauses)} " if clauses else ""
    return f"SELECT {_RAW_COLUMNS} FROM raw_messages {where}ORDER BY id LIMIT %s"


_UNIQUE_PREDICATE_RE = re.compile(r"limetype = '([A-Za-z0-9_]+)'")


class _Finished:
    """Stands in for the connection once a transaction is over."""

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreError("the transaction is finished; open a new one")

    def transaction(self) -> Any:
        raise StoreError("the transaction is finished; open a new one")


_FINISHED = _Finished()


# -- transaction ------------------------------------------------------------------------

class PostgresTx:
    """The operations of one PostgreSQL transaction (see :class:`daemon.store.base.Tx`).

    :class:`UniqueViolation` from these methods leaves the transaction usable (see the
    module notes). Using the object after the transaction ended raises :class:`StoreError`.
    """

    __slots__ = ("_conn", "_unique_limetypes")

    def __init__(self, conn: psycopg.Connection[Any], unique_limetypes: set[str]) -> None:
        self._conn: psycopg.Connection[Any] | _Finished = conn
        self._unique_limetypes = unique_limetypes

    def _x(self, sql: str, params: Sequence[Any] | None = None) -> psycopg.Cursor[Any]:
        try:
            return self._conn.execute(sql, params)
        except psycopg.Error as exc:
            raise translate(exc) from exc

    def _finish(self) -> None:
        self._conn = _FINISHED

    # -- objects ---------------------------------------------------------------------
    def create(self, limetype: str, props: Mapping[str, Any]) -> int:
        row = self._x("INSERT INTO objects (limetype, props) VALUES (%s, %s::jsonb) "
                      "ON CONFLICT DO NOTHING RETURNING id",
                      (check_name(limetype, "limetype"), dumps(props))).fetchone()
        if row is None:
            raise UniqueViolation(f"postgresql: a unique property of {limetype} is taken")
        return row[0]

    def update(self, limetype: str, id: int, props: Mapping[str, Any]) -> None:
        sql = ("UPDATE objects SET props = props || %s::jsonb, updated_at = now() "
               "WHERE id = %s AND limetype = %s")
        params = (dumps(props), id, limetype)
        if limetype in self._unique_limetypes:
            with self._savepoint():
                cur = self._x(sql, params)
        else:
            cur = self._x(sql, params)
        if cur.rowcount == 0:
            raise KeyError(f"no {limetype} with id {id}")

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        with map_errors(), self._conn.transaction():
            yield

    def get(self, limetype: str, id: int) -> Obj | None:
        row = self._x("SELECT props FROM objects WHERE id = %s AND limetype = %s",
                      (id, limetype)).fetchone()
        return None if row is None else Obj(limetype, id, row[0])

    def find(self, limetype: str, where: Mapping[str, Any] | None = None, *,
             limit: int | None = None, newest_first: bool = False) -> list[Obj]:
        sql, params = _find_query(limetype, where, limit, newest_first)
        return [Obj(limetype, id, props) for id, props in self._x(sql, params)]

    def find_one(self, limetype: str, where: Mapping[str, Any]) -> Obj | None:
        found = self.find(limetype, where, limit=1)
        return found[0] if found else None

    def delete(self, limetype: str, id: int) -> None:
        self._x("DELETE FROM objects WHERE id = %s AND limetype = %s", (id, limetype))

    # -- files -----------------------------------------------------------------------
    def put_file(self, data: bytes, filename: str, content_type: str) -> int:
        return self._x("INSERT INTO files (filename, content_type, data) "
                       "VALUES (%s, %s, %s) RETURNING id",
                       (filename, content_type, data)).fetchone()[0]

    def get_file(self, id: int) -> StoredFile | None:
        row = self._x("SELECT id, filename, content_type, data, created_at FROM files "
                      "WHERE id = %s", (id,)).fetchone()
        return None if row is None else StoredFile(*row)

    # -- raw messages ----------------------------------------------------------------
    def add_raw(self, record: RawRecord) -> None:
        cur = self._x(
            f"INSERT INTO raw_messages ({_RAW_COLUMNS}) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now())) "
            "ON CONFLICT (source_key) DO NOTHING",
            (record.source_key, record.account, record.raw, record.status,
             record.message_id, record.sha256, record.error, record.conversation_message_id,
             record.folder, utc(record.received_at, "received_at"),
             utc(record.created_at, "created_at")))
        if cur.rowcount == 0:
            raise UniqueViolation(f"postgresql: raw message {record.source_key!r} exists",
                                  account=record.account, source_key=record.source_key)

    def _raw(self, where: str, params: Sequence[Any]) -> RawRecord | None:
        row = self._x(f"SELECT {_RAW_COLUMNS} FROM raw_messages WHERE {where} "
                      "ORDER BY id LIMIT 1", params).fetchone()
        return None if row is None else RawRecord(*row)

    def get_raw(self, source_key: str) -> RawRecord | None:
        return self._raw("source_key = %s", (source_key,))

    def set_raw_result(self, source_key: str, *, status: str, error: str | None = None,
                       conversation_message_id: int | None = None) -> None:
        cur = self._x("UPDATE raw_messages SET status = %s, error = %s, "
                      "conversation_message_id = %s WHERE source_key = %s",
                      (status, error, conversation_message_id, source_key))
        if cur.rowcount == 0:
            raise KeyError(f"no raw message {source_key!r}")

    def find_raw_by_message_id(self, account: str, message_id: str) -> RawRecord | None:
        return self._raw("account = %s AND message_id = %s", (account, message_id))

    def find_raw_by_sha256(self, account: str, sha256: str) -> RawRecord | None:
        return self._raw("account = %s AND sha256 = %s", (account, sha256))

    def list_raw(self, *, account: str | None = None, status: str | None = None,
                 limit: int = 100) -> list[RawRecord]:
        params = [p for p in (account, status) if p is not None]
        sql = _list_raw_sql(account is not None, status is not None)
        return [RawRecord(*row) for row in self._x(sql, (*params, limit))]

    # -- checkpoints -----------------------------------------------------------------
    def get_checkpoint(self, account: str, key: str) -> str | None:
        row = self._x("SELECT value FROM checkpoints WHERE account = %s AND key = %s",
                      (account, key)).fetchone()
        return None if row is None else row[0]

    def set_checkpoint(self, account: str, key: str, value: str) -> None:
        self._x("INSERT INTO checkpoints (account, key, value) VALUES (%s, %s, %s) "
                "ON CONFLICT (account, key) DO UPDATE SET value = excluded.value",
                (account, key, value))

    def delete_checkpoints(self, account: str, prefix: str) -> None:
        self._x("DELETE FROM checkpoints WHERE account = %s AND left(key, %s) = %s",
                (account, len(prefix), prefix))

    # -- sequences -------------------------------------------------------------------
    def next_number(self, name: str) -> int:
        row = self._x("INSERT INTO sequences (name, value) VALUES (%s, 1) "
                      "ON CONFLICT (name) DO UPDATE SET value = sequences.value + 1 "
                      "RETURNING value", (name,)).fetchone()
        return int(row[0])

    # -- outbox ----------------------------------------------------------------------
    def enqueue(self, item: OutboxItem) -> int:
        row = self._x(
            "INSERT INTO outbox (account, recipient, message_id, raw, kind, status, "
            "attempts, next_attempt_at, last_error, message_follower_id, "
            "conversation_message_id, created_at, sent_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()), %s) "
            "ON CONFLICT (message_id) DO NOTHING RETURNING id",
            (item.account, item.recipient, item.message_id, item.raw, item.kind,
             item.status, item.attempts, utc(item.next_attempt_at, "next_attempt_at"),
             item.last_error, item.message_follower_id, item.conversation_message_id,
             utc(item.created_at, "created_at"), utc(item.sent_at, "sent_at"))).fetchone()
        if row is None:
            raise UniqueViolation("postgresql: an outbox item with this Message-ID exists",
                                  account=item.account)
        return row[0]

    def due(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        rows = self._x(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE status = 'queued' "
                       "AND (next_attempt_at IS NULL OR next_attempt_at <= %s) "
                       "ORDER BY id LIMIT %s", (utc(now, "now"), limit))
        return [OutboxItem(*row) for row in rows]

    def get_outbox(self, id: int) -> OutboxItem | None:
        row = self._x(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE id = %s", (id,)).fetchone()
        return None if row is None else OutboxItem(*row)

    def _update_outbox(self, id: int, assignments: str, params: Sequence[Any]) -> None:
        cur = self._x(f"UPDATE outbox SET attempts = attempts + 1, {assignments} "
                      "WHERE id = %s", (*params, id))
        if cur.rowcount == 0:
            raise KeyError(f"no outbox item {id}")

    def mark_sent(self, id: int, when: datetime) -> None:
        self._update_outbox(id, "status = 'sent', sent_at = %s", (utc(when, "when"),))

    def mark_retry(self, id: int, error: str, next_attempt_at: datetime) -> None:
        self._update_outbox(id, "last_error = %s, next_attempt_at = %s",
                            (error, utc(next_attempt_at, "next_attempt_at")))

    def mark_failed(self, id: int, error: str) -> None:
        self._update_outbox(id, "status = 'failed', last_error = %s", (error,))

    def outbox_by_status(self, status: str, limit: int = 100) -> list[OutboxItem]:
        rows = self._x(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE status = %s "
                       "ORDER BY id LIMIT %s", (status, limit))
        return [OutboxItem(*row) for row in rows]

    def count_outbox(self, status: str) -> int:
        row = self._x("SELECT count(*) FROM outbox WHERE status = %s", (status,)).fetchone()
        return int(row[0])

    def release_outbox(self, id: int) -> bool:
        cur = self._x("UPDATE outbox SET status = 'queued', next_attempt_at = NULL "
                      "WHERE id = %s AND status = 'held'", (id,))
        return cur.rowcount == 1

    def find_outbox_by_message_id(self, message_id: str) -> OutboxItem | None:
        row = self._x(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE message_id = %s",
                      (message_id,)).fetchone()
        return None if row is None else OutboxItem(*row)

    # -- events ----------------------------------------------------------------------
    def add_event(self, kind: str, account: str | None, data: Mapping[str, Any]) -> int:
        return self._x("INSERT INTO events (kind, account, data) "
                       "VALUES (%s, %s, %s::jsonb) RETURNING id",
                       (kind, account, dumps(data))).fetchone()[0]

    def events_since(self, after_id: int, limit: int = 100) -> list[Event]:
        rows = self._x("SELECT id, kind, account, data, created_at FROM events "
                       "WHERE id > %s ORDER BY id LIMIT %s", (after_id, limit))
        return [Event(*row) for row in rows]


# -- opening and migrating ----------------------------------------------------------------

def _schema_version(conn: psycopg.Connection[Any]) -> int:
    if conn.execute("SELECT to_regclass('schema_version')").fetchone()[0] is None:
        return 0
    return conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]


def migrate(conn: psycopg.Connection[Any], schema: str | None = None,
            steps: Sequence[migrations.Migration] = migrations.POSTGRES) -> int:
    """Create ``schema`` if needed and apply pending ``steps`` in one transaction.

    ``conn`` must be in autocommit mode with ``schema`` already on its ``search_path``.
    An advisory lock keeps nodes that start together from migrating twice.

    Returns:
        The schema version afterwards.

    Raises:
        StoreError: the database is newer than ``steps``.
        StoreBusyError: the server is unreachable or the lock timed out.
    """
    with map_errors(), conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        if schema is not None and conn.execute(
                "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone() is None:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        for step in migrations.pending(steps, _schema_version(conn)):
            for statement in step.statements:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (step.version,))
    return len(steps)


def _unique_limetypes(conn: psycopg.Connection[Any]) -> set[str]:
    """Limetypes that have a unique object index (their updates need a savepoint)."""
    rows = conn.execute("SELECT pg_get_expr(indpred, indrelid) FROM pg_index "
                        "WHERE indrelid = 'objects'::regclass AND indisunique "
                        "AND indpred IS NOT NULL").fetchall()
    return {m.group(1) for (pred,) in rows if (m := _UNIQUE_PREDICATE_RE.search(pred))}


def _configure(conn: psycopg.Connection[Any]) -> None:
    set_json_loads(loads, conn)
    conn.prepared_max = 512


def _split_url(url: str) -> tuple[str, dict[str, str]]:
    """Separate postroom's own query options from what libpq should see."""
    base, _, query = url.partition("?")
    ours: dict[str, str] = {}
    theirs: list[str] = []
    for pair in filter(None, query.split("&")):
        key, _, value = pair.partition("=")
        if key in _OUR_OPTIONS:
            ours[key] = value
        else:
            theirs.append(pair)
    return (f"{base}?{'&'.join(theirs)}" if theirs else base), ours


def _conninfo(libpq_url: str, schema: str | None, busy_timeout_ms: int) -> str:
    try:
        params = conninfo_to_dict(libpq_url)
    except psycopg.ProgrammingError as exc:
        raise ValueError(f"invalid PostgreSQL URL: {_first_line(exc)}") from None
    options = [params.get("options") or "", f"-c lock_timeout={busy_timeout_ms}",
               "-c TimeZone=UTC"]
    if schema is not None:
        options.append(f"-c search_path={schema}")
    extra: dict[str, Any] = {"options": " ".join(filter(None, options))}
    if "connect_timeout" not in params:
        extra["connect_timeout"] = DEFAULT_CONNECT_TIMEOUT_S
    return make_conninfo(libpq_url, **extra)


# -- the store ----------------------------------------------------------------------------

class PostgresStore:
    """A :class:`daemon.store.base.Store` in a PostgreSQL database (several nodes may share).

    Args:
        url: ``postgresql://user[:password]@host[:port]/db`` with optional query options
            ``schema`` (created and used alone on the search_path), ``pool_size``
            (connections, default 4), ``busy_timeout_ms`` (lock and pool wait, default
            5000) and any libpq parameter.

    Raises:
        ValueError: the URL is malformed.
        StoreBusyError: the server is unreachable.
        StoreError: the database is newer than this code, or unusable.
    """

    def __init__(self, url: str) -> None:
        self.url_for_logs = redact_url(url)
        libpq_url, ours = _split_url(url)
        self.schema = check_name(ours["schema"], "schema") if "schema" in ours else None
        pool_size = int_option(ours, "pool_size", DEFAULT_POOL_SIZE)
        busy_timeout_ms = int_option(ours, "busy_timeout_ms", DEFAULT_BUSY_TIMEOUT_MS)
        if pool_size < 1:
            raise ValueError("store URL option pool_size must be >= 1")
        #: How many transactions may run at once; AsyncStore sizes its limiter from this.
        self.max_concurrency = pool_size
        self._local = threading.local()
        conninfo = _conninfo(libpq_url, self.schema, busy_timeout_ms)
        # One direct connection first: an unreachable server fails at once instead of
        # after the pool's reconnect attempts.
        with map_errors(), psycopg.connect(conninfo, autocommit=True) as conn:
            migrate(conn, self.schema)
            self._unique_limetypes = _unique_limetypes(conn)
        self._pool = psycopg_pool.ConnectionPool(
            conninfo, min_size=1, max_size=pool_size, kwargs={"autocommit": True},
            configure=_configure, open=False, timeout=busy_timeout_ms / 1000, name="postroom")
        try:
            with map_errors():
                self._pool.open(wait=True, timeout=2 * DEFAULT_CONNECT_TIMEOUT_S)
        except BaseException:
            self._pool.close()
            raise

    def __repr__(self) -> str:
        return f"<PostgresStore {self.url_for_logs}>"

    @contextmanager
    def transaction(self) -> Iterator[PostgresTx]:
        """Run the block in one transaction on a pooled connection (see ``Store``).

        Waits up to ``busy_timeout_ms`` for a free connection. Raises :class:`StoreError`
        when called inside a transaction of the same thread (no nesting) or after close.
        A :class:`StoreBusyError` from the commit itself (connection lost) leaves the
        outcome unknown; callers retry idempotently, as everywhere else.
        """
        if getattr(self._local, "active", False):
            raise StoreError("a transaction is already open in this thread (no nesting)")
        self._local.active = True
        try:
            with map_errors(), self._pool.connection() as conn, conn.transaction():
                tx = PostgresTx(conn, self._unique_limetypes)
                try:
                    yield tx
                finally:
                    tx._finish()
        finally:
            self._local.active = False

    def ensure_index(self, limetype: str, prop: str, *, unique: bool = False) -> None:
        """Create the partial expression index for ``limetype.prop`` if it is missing.

        Raises:
            ValueError: a name does not match ``[A-Za-z0-9_]+``.
            UniqueViolation: ``unique`` and existing objects already share a value.
        """
        sql = _index_sql(limetype, prop, unique)
        with self.transaction() as tx:
            tx._x("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
            tx._x(sql)
        if unique:
            self._unique_limetypes.add(limetype)

    def close(self) -> None:
        """Close the pool; connections in use close when returned. Idempotent."""
        self._pool.close()
