"""The shared statements: dialect conversion, now(), index names, and the module graph."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import daemon.store
from daemon.store import Store
from daemon.store.postgres import POSTGRES
from daemon.store.sqlite import SQLITE
from daemon.store.transaction import index_sql

STORE_DIR = Path(daemon.store.__file__).parent


# -- dialects ---------------------------------------------------------------------------

def test_postgres_param_style_and_fragments():
    statement = "INSERT INTO events (data) VALUES ({json}){returning_id} -- 100% ?"
    assert POSTGRES.sql(statement) == (
        "INSERT INTO events (data) VALUES (%s::jsonb) RETURNING id -- 100%% %s")
    assert POSTGRES.sql(statement) is POSTGRES.sql(statement)  # converted once


def test_sqlite_keeps_qmark_and_drops_returning():
    assert SQLITE.sql("UPDATE objects SET props = {merge_props} WHERE id = ?") == (
        "UPDATE objects SET props = props_merge(props, ?) WHERE id = ?")
    assert SQLITE.sql("INSERT INTO files (data) VALUES (?){returning_id}") == (
        "INSERT INTO files (data) VALUES (?)")


def test_a_literal_percent_reaches_the_database(store: Store):
    with store.transaction() as tx:
        assert tx._x("SELECT '100%' || ?", ("!",)).fetchone()[0] == "100%!"


def test_long_index_names_are_hashed_only_where_identifiers_are_limited():
    limetype, prop = "l" * 40, "p" * 40
    assert f'"ix_obj_{limetype}__{prop}"' in index_sql(SQLITE, limetype, prop, False)
    postgres = index_sql(POSTGRES, limetype, prop, True)
    name = postgres.split('"')[1]
    assert name.startswith("ux_obj_") and len(name) <= 63
    assert name != index_sql(POSTGRES, limetype, prop + "q", True).split('"')[1]


# -- now() ------------------------------------------------------------------------------

def test_now_is_the_time_the_transaction_began(store: Store):
    with store.transaction() as tx:
        first = tx.add_event("a", None, {})
        second = tx.add_event("b", None, {})
        file_id = tx.put_file(b"x", "x.txt", "text/plain")
    with store.transaction() as tx:
        later = tx.add_event("c", None, {})
        events = {e.id: e.created_at for e in tx.events_since(0)}
        file_time = tx.get_file(file_id).created_at
    assert events[first] == events[second] == file_time
    assert events[later] > events[first]


# -- module graph -----------------------------------------------------------------------

def store_imports(path: Path) -> set[str]:
    """The daemon.store modules ``path`` imports, at the top or inside functions."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found.update(n.removeprefix("daemon.store.") for n in names
                     if n.startswith("daemon.store.") and n.count(".") == 2)
    return found


def test_no_import_cycle_in_the_store_package():
    modules = {p.stem for p in STORE_DIR.glob("*.py")} - {"__init__"}
    graph = {m: store_imports(STORE_DIR / f"{m}.py") & modules for m in modules}
    assert "url" in graph["postgres"] and "postgres" in graph["opening"]

    def reaches(start: str, target: str, seen: set[str]) -> bool:
        for nxt in graph[start] - seen:
            if nxt == target or reaches(nxt, target, seen | {nxt}):
                return True
        return False

    cycles = sorted(m for m in modules if reaches(m, m, set()))
    assert cycles == []


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_backends_do_not_import_each_other_or_the_opener(backend: str):
    assert store_imports(STORE_DIR / f"{backend}.py").isdisjoint(
        {"sqlite", "postgres", "opening"})
