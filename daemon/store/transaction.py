"""The store's SQL, once: one transaction class for SQLite and PostgreSQL.

Both backends keep the same tables (see :mod:`daemon.store.migrations`) and run the same
statements. What differs between the two databases is small and lives in a
:class:`Dialect`, one frozen value per backend (``daemon.store.sqlite.SQLITE`` and
``daemon.store.postgres.POSTGRES``), in the spirit of synapse's ``storage/engines``:

* the parameter style: statements here are written with ``?`` placeholders and each
  dialect's ``convert_param_style`` rewrites them once per statement text (PostgreSQL:
  ``%s``). So no statement may contain a literal ``?`` outside a placeholder;
* three SQL fragments: ``{json}``, how a JSON text parameter is written (``?`` or
  ``?::jsonb``); ``{merge_props}``, how ``update`` merges a JSON object into ``props``
  at the top level (a SQLite function registered by the backend, or jsonb ``||``); and
  ``{returning_id}``, what an insert ends with to hand back the id it generated;
* the JSON property expression a lookup compares and an index covers, and the type test
  that keeps ``True`` and ``1`` apart;
* times as parameters and as read back (ISO text in SQLite, ``timestamptz`` in
  PostgreSQL), and JSON as read back (text in SQLite, parsed by psycopg);
* how an insert hands back its id: ``RETURNING id`` in PostgreSQL, the cursor's
  ``lastrowid`` in SQLite (whose Python driver runs ``RETURNING`` several times slower
  than a plain insert);
* which driver errors to translate, and how.

``now()`` is the time the transaction began in both: PostgreSQL's own, and in SQLite a
function the backend registers on its connection (ISO 8601 text with microseconds).

Inserts that may hit a unique key use ``ON CONFLICT DO NOTHING`` and report the conflict
themselves (SQLite >= 3.24 has the same syntax): in PostgreSQL a failed statement aborts
the whole transaction, and callers may catch :class:`UniqueViolation` and carry on. An
update cannot be written that way, so updates of limetypes with a unique index run inside
a savepoint where the backend asks for it (PostgreSQL; SQLite undoes only the failed
statement by itself).
"""

from __future__ import annotations

__all__ = ["Dialect", "Fences", "Lease", "Transaction", "find_query", "index_sql"]

import hashlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from daemon.errors import LeaseLost, PostroomError, StoreError, UniqueViolation
from daemon.store.base import Event, Obj, OutboxItem, RawRecord, StoredFile
from daemon.store.values import WhereKind, check_name, dumps, where_kind

#: How many distinct statement texts a dialect keeps converted (find shapes included).
_MAX_COMPILED = 4096


@dataclass(frozen=True, eq=False, slots=True)
class Dialect:
    """What one database does differently, as SQL fragments and small functions.

    Compared and hashed by identity: there is one per backend, and it keys caches.
    """

    #: ``sqlite`` or ``postgresql``: the prefix of the messages this module raises.
    name: str
    #: The driver's base exception class (``sqlite3.Error``, ``psycopg.Error``).
    driver_error: type[Exception]
    #: The postroom error for a driver error (the caller raises it ``from`` the original).
    translate: Callable[[Any], PostroomError]
    #: A statement with ``?`` placeholders in the driver's own parameter style.
    convert_param_style: Callable[[str], str]
    #: A JSON text parameter (the ``{json}`` fragment).
    json_param: str
    #: ``props`` with a JSON object parameter merged in at the top level (``{merge_props}``).
    merge_props: str
    #: Appended to an insert whose generated id is wanted (``{returning_id}``).
    returning_id: str
    #: The id an insert (ending in ``{returning_id}``) generated; None if it inserted none.
    inserted_id: Callable[[Any], int | None]
    #: The SQL expression of one property of ``props``; JSON null reads as SQL NULL.
    prop_expr: Callable[[str], str]
    #: The WHERE term comparing a property with one non-null lookup parameter.
    prop_equals: Callable[[str, WhereKind], str]
    #: A non-null lookup value as its parameter.
    lookup_param: Callable[[Any], Any]
    #: The LIMIT parameter that means "no limit".
    no_limit: int | None
    #: Identifier length limit (longer index names are hashed), or None.
    max_identifier: int | None
    #: An aware datetime (or None) as a parameter; refuses naive ones (ValueError).
    time_param: Callable[[datetime | None, str], Any]
    #: A stored time as read back, as an aware datetime in UTC (or None).
    time_value: Callable[[Any], datetime | None]
    #: A stored JSON value as read back, as Python values.
    json_value: Callable[[Any], Any]
    #: Appended to a SELECT that must keep rows from changing until commit (``{share_lock}``;
    #: SQLite's single writer needs none).
    share_lock: str = ""
    #: Appended to a SELECT that claims queue rows no other node is claiming
    #: (``{claim_lock}``: ``FOR UPDATE SKIP LOCKED`` in PostgreSQL).
    claim_lock: str = ""
    #: A statement sending its one parameter as a notification to the other nodes when
    #: the transaction commits (PostgreSQL's ``pg_notify``); empty: single node.
    notify_kick: str = ""
    _compiled: dict[str, str] = field(default_factory=dict, repr=False)

    @contextmanager
    def map_errors(self) -> Iterator[None]:
        """Translate the driver's errors raised inside the block (see ``translate``)."""
        try:
            yield
        except self.driver_error as exc:
            raise self.translate(exc) from exc

    def sql(self, statement: str) -> str:
        """``statement`` (``?`` placeholders and the fragments above) for the driver.

        Converted once per statement text; the driver then reuses its prepared statement.
        """
        try:
            return self._compiled[statement]
        except KeyError:
            pass
        if len(self._compiled) >= _MAX_COMPILED:
            self._compiled.clear()
        text = statement.replace("{json}", self.json_param)
        text = text.replace("{merge_props}", self.merge_props)
        text = text.replace("{returning_id}", self.returning_id)
        text = text.replace("{share_lock}", self.share_lock)
        text = text.replace("{claim_lock}", self.claim_lock)
        compiled = self._compiled[statement] = self.convert_param_style(text)
        return compiled


# -- SQL --------------------------------------------------------------------------------

@lru_cache(maxsize=2048)
def _find_sql(dialect: Dialect, limetype: str, terms: tuple[tuple[str, WhereKind], ...],
              newest_first: bool) -> str:
    """``SELECT id, props ...`` for one query shape; parameters: values, then LIMIT."""
    clauses = [f"limetype = '{check_name(limetype, 'limetype')}'"]
    for prop, kind in terms:
        check_name(prop, "property")
        if kind is WhereKind.NULL:
            clauses.append(f"{dialect.prop_expr(prop)} IS NULL")
        else:
            clauses.append(dialect.prop_equals(prop, kind))
    order = "DESC" if newest_first else "ASC"
    return (f"SELECT id, props FROM objects WHERE {' AND '.join(clauses)} "
            f"ORDER BY id {order} LIMIT ?")


def find_query(dialect: Dialect, limetype: str, where: Mapping[str, Any] | None,
               limit: int | None, newest_first: bool) -> tuple[str, list[Any]]:
    """The statement (``?`` placeholders) and parameters of :meth:`Transaction.find`.

    The statement repeats the index expression and the literal ``limetype = '...'`` of
    :func:`index_sql`, so both databases' planners pick the partial expression index.
    """
    terms: list[tuple[str, WhereKind]] = []
    params: list[Any] = []
    for prop, value in (where or {}).items():
        kind = where_kind(prop, value)
        terms.append((prop, kind))
        if kind is not WhereKind.NULL:
            params.append(dialect.lookup_param(value))
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")
    params.append(dialect.no_limit if limit is None else limit)
    return _find_sql(dialect, limetype, tuple(terms), newest_first), params


def _index_name(dialect: Dialect, prefix: str, limetype: str, prop: str) -> str:
    name = f"{prefix}_obj_{limetype}__{prop}"
    if dialect.max_identifier is None or len(name) <= dialect.max_identifier:
        return name
    # PostgreSQL would truncate, and two long names could then collide silently.
    return f"{prefix}_obj_{hashlib.sha1(f'{limetype}.{prop}'.encode()).hexdigest()[:24]}"


def index_sql(dialect: Dialect, limetype: str, prop: str, unique: bool) -> str:
    """``CREATE [UNIQUE] INDEX IF NOT EXISTS`` on one property of one limetype's objects."""
    check_name(limetype, "limetype")
    check_name(prop, "property")
    kind, prefix = ("UNIQUE INDEX", "ux") if unique else ("INDEX", "ix")
    return (f'CREATE {kind} IF NOT EXISTS "{_index_name(dialect, prefix, limetype, prop)}" '
            f"ON objects (({dialect.prop_expr(prop)})) WHERE limetype = '{limetype}'")


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


_VALID_LIMETYPES: set[str] = set()


def _limetype(name: str) -> str:
    if name not in _VALID_LIMETYPES:
        _VALID_LIMETYPES.add(check_name(name, "limetype"))
    return name


class _Finished:
    """Stands in for the connection once a transaction is over."""

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        raise StoreError("the transaction is finished; open a new one")


_FINISHED = _Finished()


# -- leases -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Lease:
    """Who serves an account until when; ``epoch`` grows with every change of hands."""

    account: str
    owner: str
    epoch: int
    expires_at: datetime


class Fences:
    """The account leases this node holds (account -> epoch), for fencing intake writes.

    A store with fences (PostgreSQL with several nodes, :mod:`daemon.leases`) checks,
    before the first checkpoint write of an account in a transaction, that the lease row
    still names this node with this epoch and has not expired, and locks it until commit
    (``{share_lock}``), so a takeover waits for the write to commit or roll back. An
    account not held raises :class:`~daemon.errors.LeaseLost` without asking the database.
    Updated from the Trio thread, read from store threads (one dict lookup).
    """

    def __init__(self, node: str) -> None:
        self.node = node
        self.epochs: dict[str, int] = {}


# -- transaction ------------------------------------------------------------------------

class Transaction:
    """The operations of one transaction (see :class:`daemon.store.base.Tx`).

    The backend's store begins and ends the transaction around it; this class only runs
    statements on ``conn``. :class:`UniqueViolation` from these methods leaves the
    transaction usable. Using the object after the transaction ended raises
    :class:`StoreError`.

    Args:
        conn: a DB-API connection inside an open transaction (``sqlite3`` or psycopg).
        dialect: the backend's :class:`Dialect`.
        savepoint_limetypes: limetypes whose updates run inside a savepoint (PostgreSQL:
            those with a unique index; the set may grow while the store is open).
    """

    __slots__ = ("_conn", "_dialect", "_fenced", "_fences", "_savepoint_limetypes")

    def __init__(self, conn: Any, dialect: Dialect,
                 savepoint_limetypes: set[str] | frozenset[str] = frozenset(),
                 fences: Fences | None = None) -> None:
        self._conn = conn
        self._dialect = dialect
        self._savepoint_limetypes = savepoint_limetypes
        self._fences = fences
        self._fenced: set[str] | None = None

    def _x(self, sql: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement (``?`` placeholders); driver errors come out translated."""
        dialect = self._dialect
        try:
            return self._conn.execute(dialect.sql(sql), params)
        except dialect.driver_error as exc:
            raise dialect.translate(exc) from exc

    def _inserted_id(self, sql: str, params: Sequence[Any]) -> int | None:
        """The id an ``INSERT ... {returning_id}`` generated; None if it inserted nothing."""
        return self._dialect.inserted_id(self._x(sql, params))

    def _new_id(self, sql: str, params: Sequence[Any]) -> int:
        """The id an insert into a table without a unique key (but the id) generated."""
        id = self._inserted_id(sql, params)
        if id is None:
            raise StoreError(f"{self._dialect.name}: an insert reported no new row")
        return id

    def _finish(self) -> None:
        self._conn = _FINISHED

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        self._x("SAVEPOINT postroom_update")
        try:
            yield
        except BaseException:
            self._x("ROLLBACK TO SAVEPOINT postroom_update")
            self._x("RELEASE SAVEPOINT postroom_update")
            raise
        self._x("RELEASE SAVEPOINT postroom_update")

    # -- objects ---------------------------------------------------------------------
    def create(self, limetype: str, props: Mapping[str, Any]) -> int:
        id = self._inserted_id(
            "INSERT INTO objects (limetype, props, created_at, updated_at) "
            "VALUES (?, {json}, now(), now()) ON CONFLICT DO NOTHING{returning_id}",
            (_limetype(limetype), dumps(props)))
        if id is None:
            raise UniqueViolation(f"{self._dialect.name}: a unique property of {limetype} "
                                  "is taken")
        return id

    def update(self, limetype: str, id: int, props: Mapping[str, Any]) -> None:
        sql = ("UPDATE objects SET props = {merge_props}, updated_at = now() "
               "WHERE id = ? AND limetype = ?")
        params = (dumps(props), id, limetype)
        if limetype in self._savepoint_limetypes:
            with self._savepoint():
                cur = self._x(sql, params)
        else:
            cur = self._x(sql, params)
        if cur.rowcount == 0:
            raise KeyError(f"no {limetype} with id {id}")

    def get(self, limetype: str, id: int) -> Obj | None:
        row = self._x("SELECT props FROM objects WHERE id = ? AND limetype = ?",
                      (id, limetype)).fetchone()
        return None if row is None else Obj(limetype, id, self._dialect.json_value(row[0]))

    def find(self, limetype: str, where: Mapping[str, Any] | None = None, *,
             limit: int | None = None, newest_first: bool = False) -> list[Obj]:
        sql, params = find_query(self._dialect, limetype, where, limit, newest_first)
        json_value = self._dialect.json_value
        return [Obj(limetype, id, json_value(props)) for id, props in self._x(sql, params)]

    def find_one(self, limetype: str, where: Mapping[str, Any]) -> Obj | None:
        found = self.find(limetype, where, limit=1)
        return found[0] if found else None

    def delete(self, limetype: str, id: int) -> None:
        self._x("DELETE FROM objects WHERE id = ? AND limetype = ?", (id, limetype))

    # -- files -----------------------------------------------------------------------
    def put_file(self, data: bytes, filename: str, content_type: str) -> int:
        return self._new_id("INSERT INTO files (filename, content_type, data, created_at) "
                            "VALUES (?, ?, ?, now()){returning_id}",
                            (filename, content_type, data))

    def get_file(self, id: int) -> StoredFile | None:
        row = self._x("SELECT id, filename, content_type, data, created_at FROM files "
                      "WHERE id = ?", (id,)).fetchone()
        if row is None:
            return None
        return StoredFile(row[0], row[1], row[2], row[3],
                          created_at=self._dialect.time_value(row[4]))

    # -- raw messages ----------------------------------------------------------------
    def add_raw(self, record: RawRecord) -> None:
        time_param = self._dialect.time_param
        cur = self._x(
            f"INSERT INTO raw_messages ({_RAW_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, coalesce(?, now())) "
            "ON CONFLICT (source_key) DO NOTHING",
            (record.source_key, record.account, record.raw, record.status,
             record.message_id, record.sha256, record.error, record.conversation_message_id,
             record.folder, time_param(record.received_at, "received_at"),
             time_param(record.created_at, "created_at")))
        if cur.rowcount == 0:
            raise UniqueViolation(f"{self._dialect.name}: raw message {record.source_key!r} "
                                  "exists", account=record.account, source_key=record.source_key)

    def _raw_record(self, row: Sequence[Any]) -> RawRecord:
        time_value = self._dialect.time_value
        # One list: mypy cannot count the fields in a slice of the row.
        return RawRecord(*[*row[:9], time_value(row[9]), time_value(row[10])])

    def _raw(self, where: str, params: Sequence[Any]) -> RawRecord | None:
        row = self._x(f"SELECT {_RAW_COLUMNS} FROM raw_messages WHERE {where} "
                      "ORDER BY id LIMIT 1", params).fetchone()
        return None if row is None else self._raw_record(row)

    def get_raw(self, source_key: str) -> RawRecord | None:
        return self._raw("source_key = ?", (source_key,))

    def set_raw_result(self, source_key: str, *, status: str, error: str | None = None,
                       conversation_message_id: int | None = None) -> None:
        cur = self._x("UPDATE raw_messages SET status = ?, error = ?, "
                      "conversation_message_id = ? WHERE source_key = ?",
                      (status, error, conversation_message_id, source_key))
        if cur.rowcount == 0:
            raise KeyError(f"no raw message {source_key!r}")

    def find_raw_by_message_id(self, account: str, message_id: str) -> RawRecord | None:
        return self._raw("account = ? AND message_id = ?", (account, message_id))

    def find_raw_by_sha256(self, account: str, sha256: str) -> RawRecord | None:
        return self._raw("account = ? AND sha256 = ?", (account, sha256))

    def list_raw(self, *, account: str | None = None, status: str | None = None,
                 limit: int = 100) -> list[RawRecord]:
        params = [p for p in (account, status) if p is not None]
        sql = _list_raw_sql(account is not None, status is not None)
        return [self._raw_record(row) for row in self._x(sql, (*params, limit))]

    # -- checkpoints -----------------------------------------------------------------
    def get_checkpoint(self, account: str, key: str) -> str | None:
        row = self._x("SELECT value FROM checkpoints WHERE account = ? AND key = ?",
                      (account, key)).fetchone()
        return None if row is None else row[0]

    def set_checkpoint(self, account: str, key: str, value: str) -> None:
        self._fence(account)
        self._x("INSERT INTO checkpoints (account, key, value) VALUES (?, ?, ?) "
                "ON CONFLICT (account, key) DO UPDATE SET value = excluded.value",
                (account, key, value))

    def delete_checkpoints(self, account: str, prefix: str) -> None:
        self._fence(account)
        self._x("DELETE FROM checkpoints WHERE account = ? AND substr(key, 1, ?) = ?",
                (account, len(prefix), prefix))

    # -- sequences -------------------------------------------------------------------
    def next_number(self, name: str) -> int:
        # The upsert takes the row's write lock until the transaction ends (SQLite: the
        # database's); the SELECT then reads this transaction's own value. No RETURNING:
        # the store supports SQLite versions without it.
        self._x("INSERT INTO sequences (name, value) VALUES (?, 1) "
                "ON CONFLICT (name) DO UPDATE SET value = sequences.value + 1", (name,))
        row = self._x("SELECT value FROM sequences WHERE name = ?", (name,)).fetchone()
        return int(row[0])

    # -- outbox ----------------------------------------------------------------------
    def enqueue(self, item: OutboxItem) -> int:
        time_param = self._dialect.time_param
        id = self._inserted_id(
            "INSERT INTO outbox (account, recipient, message_id, raw, kind, status, "
            "attempts, next_attempt_at, last_error, message_follower_id, "
            "conversation_message_id, created_at, sent_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, coalesce(?, now()), ?) "
            "ON CONFLICT (message_id) DO NOTHING{returning_id}",
            (item.account, item.recipient, item.message_id, item.raw, item.kind,
             item.status, item.attempts, time_param(item.next_attempt_at, "next_attempt_at"),
             item.last_error, item.message_follower_id, item.conversation_message_id,
             time_param(item.created_at, "created_at"), time_param(item.sent_at, "sent_at")))
        if id is None:
            raise UniqueViolation(f"{self._dialect.name}: an outbox item with this "
                                  "Message-ID exists", account=item.account)
        return id

    def _outbox_item(self, row: Sequence[Any]) -> OutboxItem:
        time_value = self._dialect.time_value
        # One list: mypy cannot count the fields in a slice of the row.
        return OutboxItem(*[*row[:7], time_value(row[7]), *row[8:12], time_value(row[12]),
                            time_value(row[13])])

    def due(self, now: datetime, limit: int = 50) -> list[OutboxItem]:
        rows = self._x(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE status = 'queued' "
                       "AND (next_attempt_at IS NULL OR next_attempt_at <= ?) "
                       "ORDER BY id LIMIT ?", (self._dialect.time_param(now, "now"), limit))
        return [self._outbox_item(row) for row in rows]

    def claim_due(self, now: datetime, node: str, until: datetime,
                  limit: int = 50) -> list[OutboxItem]:
        """Claim up to ``limit`` due items for ``node`` until ``until``, oldest first.

        Due: ``queued`` with ``next_attempt_at`` unset or <= ``now``, or ``sending`` (the
        node sending it died in the at-least-once window), and not claimed by anyone
        until after ``now`` (``locked_until``, a visibility timeout: a claimant that dies
        holds nothing for longer) but ``node`` itself, whose rounds run one after another,
        so its earlier claims are over. Rows another node is claiming right now are skipped
        (``{claim_lock}``: ``FOR UPDATE SKIP LOCKED``), so two nodes never get one item.
        """
        t = self._dialect.time_param
        tnow = t(now, "now")
        ids = [id for (id,) in self._x(
            "SELECT id FROM outbox WHERE status IN ('queued', 'sending') "
            "AND (next_attempt_at IS NULL OR next_attempt_at <= ?) "
            "AND (locked_until IS NULL OR locked_until <= ? OR locked_by = ?) "
            "ORDER BY id LIMIT ?{claim_lock}", (tnow, tnow, node, limit))]
        if not ids:
            return []
        marks = ", ".join("?" * len(ids))
        self._x(f"UPDATE outbox SET locked_by = ?, locked_until = ? WHERE id IN ({marks})",
                (node, t(until, "until"), *ids))
        rows = self._x(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE id IN ({marks}) "
                       "ORDER BY id", ids)
        return [self._outbox_item(row) for row in rows]

    def mark_sending(self, id: int, node: str) -> bool:
        """Mark a claimed item ``sending`` just before the send; False if ``node`` no
        longer holds the claim (it must not send)."""
        cur = self._x("UPDATE outbox SET status = 'sending' WHERE id = ? AND locked_by = ? "
                      "AND status IN ('queued', 'sending')", (id, node))
        return bool(cur.rowcount == 1)

    def get_outbox(self, id: int) -> OutboxItem | None:
        row = self._x(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE id = ?", (id,)).fetchone()
        return None if row is None else self._outbox_item(row)

    def _update_outbox(self, id: int, assignments: str, params: Sequence[Any]) -> None:
        cur = self._x(f"UPDATE outbox SET attempts = attempts + 1, {assignments} WHERE id = ?",
                      (*params, id))
        if cur.rowcount == 0:
            raise KeyError(f"no outbox item {id}")

    def mark_sent(self, id: int, when: datetime) -> None:
        self._update_outbox(id, "status = 'sent', sent_at = ?, locked_until = NULL",
                            (self._dialect.time_param(when, "when"),))

    def mark_retry(self, id: int, error: str, next_attempt_at: datetime) -> None:
        self._update_outbox(id, "status = 'queued', last_error = ?, next_attempt_at = ?, "
                                "locked_until = NULL",
                            (error, self._dialect.time_param(next_attempt_at, "next_attempt_at")))

    def mark_failed(self, id: int, error: str) -> None:
        self._update_outbox(id, "status = 'failed', last_error = ?, locked_until = NULL",
                            (error,))

    def outbox_by_status(self, status: str, limit: int = 100) -> list[OutboxItem]:
        rows = self._x(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE status = ? "
                       "ORDER BY id LIMIT ?", (status, limit))
        return [self._outbox_item(row) for row in rows]

    def count_outbox(self, status: str) -> int:
        row = self._x("SELECT count(*) FROM outbox WHERE status = ?", (status,)).fetchone()
        return int(row[0])

    def release_outbox(self, id: int) -> bool:
        cur = self._x("UPDATE outbox SET status = 'queued', next_attempt_at = NULL "
                      "WHERE id = ? AND status = 'held'", (id,))
        return bool(cur.rowcount == 1)

    def find_outbox_by_message_id(self, message_id: str) -> OutboxItem | None:
        row = self._x(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE message_id = ?",
                      (message_id,)).fetchone()
        return None if row is None else self._outbox_item(row)

    # -- the operator's view: failed messages, retention -------------------------------
    def failed_raw(self, after_id: int = 0, limit: int = 100) -> list[tuple[int, RawRecord]]:
        rows = self._x(f"SELECT id, {_RAW_COLUMNS} FROM raw_messages WHERE status = ? "
                       "AND id > ? ORDER BY id LIMIT ?", ("failed", after_id, limit))
        return [(row[0], self._raw_record(row[1:])) for row in rows]

    def raw_by_id(self, id: int) -> RawRecord | None:
        return self._raw("id = ?", (id,))

    def last_event_id(self) -> int:
        row = self._x("SELECT max(id) FROM events").fetchone()
        return int(row[0] or 0)

    def find_page(self, limetype: str, where: Mapping[str, Any] | None, *, after_id: int,
                  limit: int, newest_first: bool = False) -> list[Obj]:
        sql, params = find_query(self._dialect, limetype, where, limit, newest_first)
        if after_id:
            head, order, tail = sql.rpartition(" ORDER BY ")
            sql = f"{head} AND id {'<' if newest_first else '>'} ? {order}{tail}"
            params.insert(-1, after_id)
        json_value = self._dialect.json_value
        return [Obj(limetype, id, json_value(props)) for id, props in self._x(sql, params)]

    def outbox_page(self, status: str, after_id: int, limit: int) -> list[OutboxItem]:
        rows = self._x(f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE status = ? AND id > ? "
                       "ORDER BY id LIMIT ?", (status, after_id, limit))
        return [self._outbox_item(row) for row in rows]

    def requeue_outbox(self, id: int) -> bool:
        cur = self._x("UPDATE outbox SET status = 'queued', next_attempt_at = NULL "
                      "WHERE id = ? AND status IN ('failed', 'queued')", (id,))
        return bool(cur.rowcount == 1)

    def cancel_outbox(self, id: int) -> bool:
        cur = self._x("UPDATE outbox SET status = 'cancelled', next_attempt_at = NULL "
                      "WHERE id = ? AND status IN ('queued', 'held', 'failed')", (id,))
        return bool(cur.rowcount == 1)

    def delete_raw(self, source_key: str) -> None:
        self._x("DELETE FROM raw_messages WHERE source_key = ?", (source_key,))

    def purge(self, before: datetime) -> tuple[int, int]:
        cutoff = self._dialect.time_param(before, "before")
        raws = self._x("UPDATE raw_messages SET raw = ? WHERE created_at < ? "
                       "AND status <> ? AND length(raw) > 0", (b"", cutoff, "failed"))
        events = self._x("DELETE FROM events WHERE created_at < ?", (cutoff,))
        return raws.rowcount, events.rowcount

    # -- events ----------------------------------------------------------------------
    def add_event(self, kind: str, account: str | None, data: Mapping[str, Any]) -> int:
        return self._new_id("INSERT INTO events (kind, account, data, created_at) "
                            "VALUES (?, ?, {json}, now()){returning_id}",
                            (kind, account, dumps(data)))

    def events_since(self, after_id: int, limit: int = 100) -> list[Event]:
        rows = self._x("SELECT id, kind, account, data, created_at FROM events "
                       "WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit))
        json_value, time_value = self._dialect.json_value, self._dialect.time_value
        return [Event(id, kind, account, json_value(data), time_value(created))
                for id, kind, account, data, created in rows]

    # -- nodes and leases (daemon.leases) ---------------------------------------------
    def _fence(self, account: str) -> None:
        """Refuse an intake write of ``account`` unless this node holds its lease (see
        :class:`Fences`); once per account and transaction."""
        fences = self._fences
        if fences is None or (self._fenced is not None and account in self._fenced):
            return
        epoch = fences.epochs.get(account)
        if epoch is None or not self.holds_lease(account, fences.node, epoch):
            raise LeaseLost(f"node {fences.node} does not hold the lease of {account!r}",
                            account=account)
        if self._fenced is None:
            self._fenced = set()
        self._fenced.add(account)

    def holds_lease(self, account: str, node: str, epoch: int) -> bool:
        """Whether ``node`` holds ``account``'s lease with ``epoch``, unexpired; the row is
        then locked until commit (``{share_lock}``)."""
        row = self._x("SELECT epoch FROM account_leases WHERE account = ? AND owner = ? "
                      "AND epoch = ? AND expires_at > now(){share_lock}",
                      (account, node, epoch)).fetchone()
        return row is not None

    def db_now(self) -> datetime:
        """The database's ``now()``: the one clock every node's leases are measured by."""
        value = self._dialect.time_value(self._x("SELECT now()").fetchone()[0])
        assert value is not None
        return value

    def beat_node(self, node: str, now: datetime, expires_at: datetime) -> None:
        """Record that ``node`` is alive until ``expires_at``."""
        t = self._dialect.time_param
        self._x("INSERT INTO nodes (node_id, started_at, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (node_id) DO UPDATE SET expires_at = excluded.expires_at",
                (node, t(now, "now"), t(expires_at, "expires_at")))

    def forget_nodes(self, before: datetime) -> None:
        """Delete the rows of nodes whose heartbeat expired before ``before`` (ids of the
        form hostname:pid change with every start)."""
        self._x("DELETE FROM nodes WHERE expires_at < ?",
                (self._dialect.time_param(before, "before"),))

    def live_nodes(self, now: datetime) -> list[str]:
        """Nodes whose heartbeat has not expired at ``now``, by id."""
        rows = self._x("SELECT node_id FROM nodes WHERE expires_at > ? ORDER BY node_id",
                       (self._dialect.time_param(now, "now"),))
        return [node for (node,) in rows]

    def leases(self) -> list[Lease]:
        """Every account's lease row (expired ones too), by account."""
        time_value = self._dialect.time_value
        rows = self._x("SELECT account, owner, epoch, expires_at FROM account_leases "
                       "ORDER BY account")
        return [Lease(account, owner, int(epoch), time_value(expires))  # type: ignore[arg-type]
                for account, owner, epoch, expires in rows]

    def acquire_lease(self, account: str, node: str, now: datetime,
                      expires_at: datetime) -> int | None:
        """Take ``account``'s lease if it is free or expired at ``now``; return the new
        epoch (one more than the last), or None if another node holds it.

        Two nodes racing for one row: the second's conditional UPDATE re-reads the row
        after the first committed and finds it held. Each change of hands is appended to
        ``lease_history``.
        """
        t = self._dialect.time_param
        tnow, tuntil = t(now, "now"), t(expires_at, "expires_at")
        previous = self._x("SELECT owner, epoch, expires_at FROM account_leases "
                           "WHERE account = ?", (account,)).fetchone()
        if previous is None:
            cur = self._x("INSERT INTO account_leases (account, owner, epoch, acquired_at, "
                          "expires_at) VALUES (?, ?, 1, ?, ?) ON CONFLICT DO NOTHING",
                          (account, node, tnow, tuntil))
            epoch, previous_owner, previous_expiry = 1, None, None
        else:
            cur = self._x("UPDATE account_leases SET owner = ?, epoch = epoch + 1, "
                          "acquired_at = ?, expires_at = ? "
                          "WHERE account = ? AND epoch = ? AND expires_at <= ?",
                          (node, tnow, tuntil, account, previous[1], tnow))
            epoch = int(previous[1]) + 1
            previous_owner, previous_expiry = previous[0], previous[2]
        if cur.rowcount != 1:
            return None
        self._x("INSERT INTO lease_history (account, owner, epoch, acquired_at, "
                "previous_owner, previous_expires_at) VALUES (?, ?, ?, ?, ?, ?)",
                (account, node, epoch, tnow, previous_owner, previous_expiry))
        return epoch

    def renew_leases(self, node: str, now: datetime, expires_at: datetime) -> None:
        """Extend every unexpired lease of ``node`` to ``expires_at``."""
        t = self._dialect.time_param
        self._x("UPDATE account_leases SET expires_at = ? WHERE owner = ? AND expires_at > ?",
                (t(expires_at, "expires_at"), node, t(now, "now")))

    def release_lease(self, account: str, node: str, now: datetime) -> None:
        """Give ``account``'s lease up at ``now`` (if ``node`` holds it): free to take."""
        self._x("UPDATE account_leases SET expires_at = ? WHERE account = ? AND owner = ? "
                "AND expires_at > ?", (self._dialect.time_param(now, "now"), account, node,
                                       self._dialect.time_param(now, "now")))

    def lease_history(self) -> list[dict[str, Any]]:
        """Every change of hands, oldest first (the drills read it)."""
        time_value = self._dialect.time_value
        rows = self._x("SELECT account, owner, epoch, acquired_at, previous_owner, "
                       "previous_expires_at FROM lease_history ORDER BY id")
        return [{"account": a, "owner": o, "epoch": int(e), "acquired_at": time_value(at),
                 "previous_owner": po, "previous_expires_at": time_value(pe)}
                for a, o, e, at, po, pe in rows]

    # -- kicks: "sync now" across nodes (daemon.kicks) ----------------------------------
    def record_kick(self, account: str) -> None:
        """Ask the node serving ``account`` to sync it now: a row it will consume, and a
        notification at commit (best effort; the owner also polls)."""
        self._x("INSERT INTO account_kicks (account, requested_at) VALUES (?, now()) "
                "ON CONFLICT (account) DO UPDATE SET requested_at = excluded.requested_at",
                (account,))
        if self._dialect.notify_kick:
            self._x(self._dialect.notify_kick, (account,))

    def take_kicks(self, accounts: Sequence[str]) -> list[str]:
        """Consume the kicks of ``accounts`` (fenced: only their lease holder may)."""
        if not accounts:
            return []
        marks = ", ".join("?" * len(accounts))
        kicked = [a for (a,) in self._x(
            f"SELECT account FROM account_kicks WHERE account IN ({marks}) ORDER BY account",
            list(accounts))]
        for account in kicked:
            self._fence(account)
        if kicked:
            marks = ", ".join("?" * len(kicked))
            self._x(f"DELETE FROM account_kicks WHERE account IN ({marks})", kicked)
        return kicked
