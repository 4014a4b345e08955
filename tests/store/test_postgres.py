"""PostgreSQL specifics: schema handling, URL options, error mapping, index use, migrations."""

from __future__ import annotations

import psycopg
import pytest

from daemon.errors import StoreBusyError, StoreError, UniqueViolation
from daemon.store import migrations, open_store
from daemon.store.postgres import POSTGRES, PostgresStore, _conninfo, migrate
from daemon.store.transaction import find_query
from tests.store.conftest import POSTGRES_URL


def schema_of(url: str) -> str:
    return url.rpartition("schema=")[2]


@pytest.fixture
def pg_store(pg_url: str):
    store = open_store(pg_url)
    assert isinstance(store, PostgresStore)
    yield store
    store.close()


def test_unreachable_server_raises_store_busy_without_the_password():
    with pytest.raises(StoreBusyError) as info:
        open_store("postgresql://postgres:s3cret-pw@127.0.0.1:1/test?connect_timeout=2")
    assert isinstance(info.value.__cause__, psycopg.OperationalError)
    assert "s3cret-pw" not in str(info.value)


@pytest.mark.parametrize("url", [
    "postgresql://postgres@127.0.0.1:1/test?schema=Bad-Name",
    "postgresql://postgres@127.0.0.1:1/test?pool_size=0",
    "postgresql://postgres@127.0.0.1:1/test?pool_size=many",
    "postgresql://postgres@127.0.0.1:1/test?busy_timeout_ms=-5",
    "postgresql://postgres@127.0.0.1:1/test?no_such_libpq_option=1",
])
def test_bad_url_options_are_refused_before_connecting(url: str):
    with pytest.raises(ValueError):
        open_store(url)


def test_session_options_are_merged_with_the_users():
    conninfo = _conninfo("postgresql://u@h/db?options=-c%20work_mem%3D8MB", "s1", 50)
    params = psycopg.conninfo.conninfo_to_dict(conninfo)
    assert params["options"].split(" -c ") == [
        "-c work_mem=8MB", "lock_timeout=50", "TimeZone=UTC", "search_path=s1"]
    assert params["connect_timeout"] == "5"



@pytest.mark.postgres
def test_tables_live_in_the_schema(pg_url: str, pg_store: PostgresStore):
    with psycopg.connect(POSTGRES_URL) as conn:
        tables = {r[0] for r in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = %s", (schema_of(pg_url),))}
    assert tables == {"schema_version", "objects", "raw_messages", "checkpoints", "outbox",
                      "events", "files", "sequences", "nodes", "account_leases",
                      "lease_history", "account_kicks"}


@pytest.mark.postgres
def test_password_never_reaches_url_for_logs(pg_url: str):
    url = pg_url.replace("postgres@", "postgres:hunter2@")  # trust auth ignores it
    store = open_store(url)
    try:
        assert "hunter2" not in store.url_for_logs
        assert "hunter2" not in repr(store)
        assert store.url_for_logs.startswith("postgresql://postgres:***@127.0.0.1")
    finally:
        store.close()


@pytest.mark.postgres
def test_pool_size_sets_max_concurrency(pg_url: str):
    store = open_store(f"{pg_url}&pool_size=2")
    try:
        assert store.max_concurrency == 2
    finally:
        store.close()


@pytest.mark.postgres
def test_lock_timeout_raises_store_busy(pg_url: str):
    store = open_store(f"{pg_url}&busy_timeout_ms=50")
    other = psycopg.connect(POSTGRES_URL)
    try:
        other.execute(f'LOCK TABLE "{schema_of(pg_url)}".checkpoints IN ACCESS EXCLUSIVE MODE')
        with pytest.raises(StoreBusyError) as info, store.transaction() as tx:
            tx.set_checkpoint("a", "k", "v")
        assert isinstance(info.value.__cause__, psycopg.errors.LockNotAvailable)
        other.rollback()
        with store.transaction() as tx:
            tx.set_checkpoint("a", "k", "v")
    finally:
        other.close()
        store.close()


@pytest.mark.postgres
def test_closed_store(pg_store: PostgresStore):
    pg_store.close()
    pg_store.close()
    with pytest.raises(StoreError, match="closed"), pg_store.transaction():
        pass


@pytest.mark.postgres
@pytest.mark.parametrize("where", [
    {"email": "ann@example.com"}, {"email": 3}, {"email": True}, {"email": None},
])
def test_find_uses_the_expression_index(pg_store: PostgresStore, where: dict):
    pg_store.ensure_index("person", "email", unique=True)
    pg_store.ensure_index("company", "email")
    for limetype, index in (("person", "ux_obj_person__email"),
                            ("company", "ix_obj_company__email")):
        sql, params = find_query(POSTGRES, limetype, where, None, False)
        with pg_store.transaction() as tx:
            tx._x("SET LOCAL enable_seqscan = off")
            text = "\n".join(r[0] for r in tx._x(f"EXPLAIN {sql}", params))
        assert f"Index Scan using {index}" in text or f"Bitmap Index Scan on {index}" in text


@pytest.mark.postgres
def test_long_names_get_distinct_index_names(pg_store: PostgresStore):
    limetype = "conversationmessageerror_with_a_long_name"
    props = ["property_with_a_rather_long_name_one", "property_with_a_rather_long_name_two"]
    for prop in props:
        pg_store.ensure_index(limetype, prop)
        pg_store.ensure_index(limetype, prop)
    with pg_store.transaction() as tx:
        names = [r[0] for r in tx._x(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = 'objects' AND indexname LIKE 'ix_obj_%'")]
    assert len(names) == 2 and all(len(n) <= 63 for n in names)


@pytest.mark.postgres
def test_unique_indexes_made_elsewhere_are_known_at_open(pg_url: str, pg_store: PostgresStore):
    pg_store.ensure_index("person", "email", unique=True)
    later = open_store(pg_url)
    try:
        with later.transaction() as tx:
            ann = tx.create("person", {"email": "ann@example.com"})
            bob = tx.create("person", {"email": "bob@example.com"})
            with pytest.raises(UniqueViolation):
                tx.update("person", bob, {"email": "ann@example.com"})
            tx.update("person", ann, {"name": "Ann"})  # still usable: it ran in a savepoint
    finally:
        later.close()


@pytest.mark.postgres
def test_opening_a_version_1_schema_migrates_it(pg_url: str):
    schema = schema_of(pg_url)
    with psycopg.connect(POSTGRES_URL, autocommit=True,
                         options=f"-c search_path={schema}") as old:
        assert migrate(old, schema, migrations.POSTGRES[:1]) == 1
        old.execute("INSERT INTO raw_messages (source_key, account, raw, status) "
                    "VALUES ('k1', 'support', '\\x00ff'::bytea, 'imported')")
    store = open_store(pg_url)
    try:
        with store.transaction() as tx:
            assert tx.get_raw("k1").raw == b"\x00\xff"
            tx.put_file(b"data", "a.txt", "text/plain")
            applied = tx._x("SELECT version, applied_at FROM schema_version "
                            "ORDER BY version").fetchall()
    finally:
        store.close()
    assert [v for v, _ in applied] == [m.version for m in migrations.POSTGRES]
    again = open_store(pg_url)
    try:
        with again.transaction() as tx:
            assert tx._x("SELECT version, applied_at FROM schema_version "
                         "ORDER BY version").fetchall() == applied
    finally:
        again.close()


@pytest.mark.postgres
def test_a_newer_schema_is_refused(pg_url: str, pg_store: PostgresStore):
    with pg_store.transaction() as tx:
        tx._x("INSERT INTO schema_version (version) VALUES (99)")
    with pytest.raises(StoreError, match="newer"):
        open_store(pg_url)
