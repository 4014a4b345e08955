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
    * The statements are those of :class:`daemon.store.transaction.Transaction`; this
      module holds only PostgreSQL's :data:`POSTGRES` dialect, the pool and migrations.
    * A failed statement aborts a PostgreSQL transaction. So that callers can catch
      :class:`UniqueViolation` and carry on (as SQLite allows), inserts use
      ``ON CONFLICT DO NOTHING`` and report the conflict themselves, and updates of a
      limetype with a unique index run inside a savepoint (the store passes those
      limetypes to each transaction). (A unique index created by another node after this
      store opened is not known here: a violation still raises UniqueViolation, but
      leaves the transaction aborted.)
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

__all__ = ["DEFAULT_POOL_SIZE", "POSTGRES", "PostgresStore", "map_errors", "migrate",
           "translate"]

import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
import psycopg_pool
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.types.json import set_json_loads

from daemon.errors import PostroomError, StoreBusyError, StoreError, UniqueViolation
from daemon.store import migrations
from daemon.store.transaction import Dialect, Fences, Transaction, index_sql
from daemon.store.url import int_option, redact_url
from daemon.store.values import WhereKind, check_name, dumps, loads, utc

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


# -- what PostgreSQL does differently -------------------------------------------------------

def _prop_expr(prop: str) -> str:
    return f"NULLIF(props -> '{prop}', 'null'::jsonb)"


def _prop_equals(prop: str, kind: WhereKind) -> str:
    # jsonb equality compares JSON types: true is not 1, "1" is not 1.
    return f"{_prop_expr(prop)} = ?::jsonb"


def _convert_param_style(sql: str) -> str:
    """``?`` placeholders as psycopg's ``%s`` (a literal ``%`` doubled)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _inserted_id(cursor: psycopg.Cursor[Any]) -> int | None:
    row = cursor.fetchone()
    return None if row is None else row[0]


def _same(value: Any) -> Any:
    return value


#: PostgreSQL's side of :class:`daemon.store.transaction.Dialect`. psycopg parses jsonb
#: (:func:`_configure`) and returns ``timestamptz`` as aware datetimes in UTC (the session
#: time zone), so values read back need no conversion.
POSTGRES = Dialect(
    name="postgresql", driver_error=psycopg.Error, translate=translate,
    convert_param_style=_convert_param_style, json_param="?::jsonb",
    merge_props="props || ?::jsonb", returning_id=" RETURNING id", inserted_id=_inserted_id,
    prop_expr=_prop_expr, prop_equals=_prop_equals,
    lookup_param=dumps, no_limit=None, max_identifier=_MAX_IDENTIFIER, time_param=utc,
    time_value=_same, json_value=_same, share_lock=" FOR SHARE",
    claim_lock=" FOR UPDATE SKIP LOCKED",
    notify_kick="SELECT pg_notify('postroom_kicks', ?)",
)

#: Translate psycopg errors raised inside the block (see :func:`translate`).
map_errors = POSTGRES.map_errors

_UNIQUE_PREDICATE_RE = re.compile(r"limetype = '([A-Za-z0-9_]+)'")


# -- opening and migrating ----------------------------------------------------------------

def _schema_version(conn: psycopg.Connection[Any]) -> int:
    exists = conn.execute("SELECT to_regclass('schema_version')").fetchone()
    assert exists is not None  # a SELECT without FROM returns one row
    if exists[0] is None:
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    assert row is not None  # an aggregate returns one row
    version: int = row[0]
    return version


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
    options = [str(params.get("options") or ""), f"-c lock_timeout={busy_timeout_ms}",
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
        #: Set by daemon.leases when several nodes share the store: fences intake writes.
        self.fences: Fences | None = None
        conninfo = _conninfo(libpq_url, self.schema, busy_timeout_ms)
        #: For a dedicated connection (daemon.kicks LISTENs on one); never logged.
        self.conninfo = conninfo
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

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
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
                tx = Transaction(conn, POSTGRES, self._unique_limetypes, self.fences)
                try:
                    yield tx
                finally:
                    tx._finish()
        finally:
            self._local.active = False

    def ensure_index(self, limetype: str, prop: str, *, unique: bool = False) -> None:
        """Create the partial expression index if missing (see ``Store.ensure_index``).

        Under the advisory lock, so nodes starting together do not race. After a unique
        one, updates of ``limetype`` run in a savepoint (see the module notes).
        """
        sql = index_sql(POSTGRES, limetype, prop, unique)
        with self.transaction() as tx:
            tx._x("SELECT pg_advisory_xact_lock(?)", (_LOCK_KEY,))
            tx._x(sql)
        if unique:
            self._unique_limetypes.add(limetype)

    def close(self) -> None:
        """Close the pool; connections in use close when returned. Idempotent."""
        self._pool.close()

    def __repr__(self) -> str:
        return f"<PostgresStore {self.url_for_logs}>"
