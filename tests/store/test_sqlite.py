"""SQLite specifics: URL forms, connection settings, error mapping, index use, migrations."""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
from pathlib import Path

import pytest

from daemon.errors import StoreBusyError, StoreError, UniqueViolation
from daemon.store import migrations, open_store
from daemon.store.sqlite import SQLITE, SqliteStore, map_errors, migrate, translate
from daemon.store.transaction import find_query
from tests.store.conftest import sqlite_url


@pytest.fixture
def sqlite_store(tmp_path: Path):
    store = open_store(sqlite_url(tmp_path))
    assert isinstance(store, SqliteStore)
    yield store
    store.close()


# -- URLs -------------------------------------------------------------------------------

def test_absolute_path_creates_parent_directories(tmp_path: Path):
    path = tmp_path / "var" / "lib" / "postroom.db"
    url = f"sqlite:///{path}"
    assert url.startswith("sqlite:////")
    store = open_store(url)
    try:
        assert path.is_file()
        assert store.url_for_logs == url
    finally:
        store.close()


def test_relative_path_is_relative_to_the_working_directory(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    open_store("sqlite:///data/x.db").close()
    assert (tmp_path / "data" / "x.db").is_file()


def test_memory_database():
    store = open_store("sqlite:///:memory:")
    try:
        with store.transaction() as tx:
            assert tx.get("person", tx.create("person", {"a": 1})).props == {"a": 1}
    finally:
        store.close()


@pytest.mark.parametrize("url", [
    "sqlite://x.db", "sqlite:/x.db", "sqlite:x.db", "sqlite:///", "sqlite:///x.db?timeout=5",
    "sqlite:///x.db?busy_timeout_ms=soon", "sqlite:///x.db?busy_timeout_ms=-1",
    "mysql://localhost/x", "x.db", "",
])
def test_malformed_urls_are_refused(url: str, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError):
        open_store(url)
    assert list(tmp_path.iterdir()) == []


# -- file permissions (issue 9) ---------------------------------------------------------

@pytest.fixture
def loose_umask():
    """A umask that would leave new files world-readable (0644) and directories 0755."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.mark.usefixtures("loose_umask")
def test_the_database_its_wal_and_shm_and_new_directories_are_private(tmp_path: Path):
    path = tmp_path / "state" / "postroom" / "store.db"
    existing = mode(tmp_path)
    store = open_store(f"sqlite:///{path}")
    try:
        with store.transaction() as tx:  # a write, so the WAL has content
            tx.set_checkpoint("a", "k", "v")
        wal, shm = Path(f"{path}-wal"), Path(f"{path}-shm")
        assert wal.is_file() and shm.is_file()
        assert [mode(p) for p in (path, wal, shm)] == [0o600, 0o600, 0o600]
        assert [mode(p) for p in (path.parent, path.parent.parent)] == [0o700, 0o700]
    finally:
        store.close()
    assert mode(tmp_path) == existing  # not created by the store: left alone


def test_an_umask_without_owner_bits_still_gives_owner_access(tmp_path: Path):
    previous = os.umask(0o377)  # would create 0400 files and 0400 directories
    try:
        path = tmp_path / "new" / "store.db"
        store = open_store(f"sqlite:///{path}")
        store.close()
    finally:
        os.umask(previous)
    assert (mode(path), mode(path.parent)) == (0o600, 0o700)


@pytest.mark.usefixtures("loose_umask")
def test_existing_directories_and_database_keep_their_modes(tmp_path: Path):
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o750)
    shared.chmod(0o750)
    path = shared / "store.db"
    path.touch()
    path.chmod(0o640)  # the operator's choice, e.g. a backup group may read
    open_store(f"sqlite:///{path}").close()
    assert (mode(shared), mode(path)) == (0o750, 0o640)


# -- connection settings ----------------------------------------------------------------

def pragma(store: SqliteStore, name: str):
    return store._conn.execute(f"PRAGMA {name}").fetchone()[0]


def test_connection_settings(sqlite_store: SqliteStore):
    assert pragma(sqlite_store, "journal_mode") == "wal"
    assert pragma(sqlite_store, "synchronous") == 1  # NORMAL
    assert pragma(sqlite_store, "foreign_keys") == 1
    assert pragma(sqlite_store, "busy_timeout") == 5000


def test_busy_timeout_from_the_url(tmp_path: Path):
    store = open_store(sqlite_url(tmp_path, "?busy_timeout_ms=50"))
    try:
        assert pragma(store, "busy_timeout") == 50
    finally:
        store.close()


# -- errors -----------------------------------------------------------------------------

def test_locked_database_raises_store_busy(tmp_path: Path):
    store = open_store(sqlite_url(tmp_path, "?busy_timeout_ms=50"))
    other = sqlite3.connect(tmp_path / "store.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreBusyError) as info, store.transaction():
            pass
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        other.execute("ROLLBACK")
        with store.transaction() as tx:  # usable again once the lock is gone
            tx.set_checkpoint("a", "k", "v")
    finally:
        other.close()
        store.close()


def test_disk_full_raises_store_busy_and_rolls_back(sqlite_store: SqliteStore):
    conn = sqlite_store._conn
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(StoreBusyError) as info, sqlite_store.transaction() as tx:
        tx.set_checkpoint("a", "k", "v")
        tx.put_file(b"x" * 1_000_000, "big.bin", "application/octet-stream")
    assert info.value.__cause__.sqlite_errorcode == sqlite3.SQLITE_FULL
    conn.execute("PRAGMA max_page_count = 1073741823")
    with sqlite_store.transaction() as tx:
        assert tx.get_checkpoint("a", "k") is None


def sqlite_error(cls: type[sqlite3.Error], message: str, code: int) -> sqlite3.Error:
    exc = cls(message)
    exc.sqlite_errorcode = code
    return exc


@pytest.mark.parametrize(("exc", "expected"), [
    (sqlite_error(sqlite3.IntegrityError, "UNIQUE constraint failed: t.c",
                  sqlite3.SQLITE_CONSTRAINT_UNIQUE), UniqueViolation),
    (sqlite_error(sqlite3.IntegrityError, "NOT NULL constraint failed: t.c", 1299), StoreError),
    (sqlite_error(sqlite3.OperationalError, "database is locked", sqlite3.SQLITE_BUSY),
     StoreBusyError),
    # 522 = SQLITE_IOERR_SHORT_READ: an extended code of SQLITE_IOERR
    (sqlite_error(sqlite3.OperationalError, "disk I/O error", 522), StoreBusyError),
    (sqlite_error(sqlite3.OperationalError, "database or disk is full", sqlite3.SQLITE_FULL),
     StoreBusyError),
    (sqlite3.OperationalError("database is locked"), StoreBusyError),
    (sqlite_error(sqlite3.OperationalError, "no such table: x", 1), StoreError),
    (sqlite3.ProgrammingError("Cannot operate on a closed database."), StoreError),
])
def test_translate_picks_the_most_specific_error(exc: sqlite3.Error, expected: type):
    translated = translate(exc)
    assert type(translated) is expected
    with pytest.raises(expected) as info, map_errors():
        raise exc
    assert info.value.__cause__ is exc


def test_closed_store(tmp_path: Path):
    store = open_store(sqlite_url(tmp_path))
    store.close()
    store.close()  # idempotent
    with pytest.raises(StoreError, match="closed"), store.transaction():
        pass


def test_threads_take_turns(sqlite_store: SqliteStore):
    def bump() -> None:
        for _ in range(50):
            with sqlite_store.transaction() as tx:
                value = int(tx.get_checkpoint("a", "n") or 0)
                tx.set_checkpoint("a", "n", str(value + 1))

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    with sqlite_store.transaction() as tx:
        assert tx.get_checkpoint("a", "n") == "200"


# -- indexes ----------------------------------------------------------------------------

def plan(store: SqliteStore, limetype: str, where: dict) -> str:
    sql, params = find_query(SQLITE, limetype, where, None, False)
    rows = store._conn.execute(f"EXPLAIN QUERY PLAN {sql}", params).fetchall()
    return " | ".join(row[-1] for row in rows)


@pytest.mark.parametrize("where", [{"email": "ann@example.com"}, {"email": 3}, {"email": True}])
def test_find_uses_the_expression_index(sqlite_store: SqliteStore, where: dict):
    sqlite_store.ensure_index("person", "email", unique=True)
    sqlite_store.ensure_index("company", "email")
    assert "USING INDEX ux_obj_person__email" in plan(sqlite_store, "person", where)
    assert "USING INDEX ix_obj_company__email" in plan(sqlite_store, "company", where)
    assert "TEMP B-TREE" not in plan(sqlite_store, "person", where)  # no sort step
    # no index for this limetype: it scans that limetype only, never the whole table
    assert "USING INDEX objects_limetype" in plan(sqlite_store, "helpdesk", where)


def test_find_by_none_searches_an_index(sqlite_store: SqliteStore):
    # "missing or null" is rarely selective; the planner may prefer the limetype index
    # when it is as cheap, but it never scans the whole table.
    sqlite_store.ensure_index("person", "email", unique=True)
    assert "USING INDEX ux_obj_person__email" in plan(sqlite_store, "person", {"email": None})
    sqlite_store.ensure_index("company", "email")
    assert plan(sqlite_store, "company", {"email": None}).startswith("SEARCH objects USING")


# -- migrations -------------------------------------------------------------------------

def versions(path: Path) -> list[tuple[int, str]]:
    with sqlite3.connect(path) as conn:
        return conn.execute("SELECT version, applied_at FROM schema_version "
                            "ORDER BY version").fetchall()


def test_opening_a_version_1_database_migrates_it(tmp_path: Path):
    path = tmp_path / "store.db"
    old = sqlite3.connect(path, isolation_level=None)
    assert migrate(old, migrations.SQLITE[:1]) == 1
    old.execute("INSERT INTO raw_messages (source_key, account, raw, status, created_at) "
                "VALUES ('k1', 'support', x'00ff', 'imported', "
                "'2024-05-01T12:00:00.000000+00:00')")
    old.close()
    assert [v for v, _ in versions(path)] == [1]

    store = open_store(sqlite_url(tmp_path))
    try:
        with store.transaction() as tx:
            assert tx.get_raw("k1").raw == b"\x00\xff"
            tx.put_file(b"data", "a.txt", "text/plain")  # a table from a later version
    finally:
        store.close()
    after = versions(path)
    assert [v for v, _ in after] == [m.version for m in migrations.SQLITE]

    open_store(sqlite_url(tmp_path)).close()
    assert versions(path) == after  # reopening is a no-op


def test_a_newer_database_is_refused(tmp_path: Path):
    open_store(sqlite_url(tmp_path)).close()
    with sqlite3.connect(tmp_path / "store.db") as conn:
        conn.execute("INSERT INTO schema_version VALUES (99, 'future')")
    with pytest.raises(StoreError, match="newer"):
        open_store(sqlite_url(tmp_path))
