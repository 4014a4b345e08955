"""Fixtures: a fresh store per test, SQLite in tmp_path and PostgreSQL in a random schema.

The PostgreSQL server is the one on 127.0.0.1:5432 (override with
``POSTROOM_TEST_POSTGRES_URL``). When it is unreachable the PostgreSQL half is skipped
with the reason; the schema of each test is dropped afterwards.
"""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from daemon.store import Store, open_store, redact_url

POSTGRES_URL = os.environ.get("POSTROOM_TEST_POSTGRES_URL",
                              "postgresql://postgres@127.0.0.1:5432/test")


@functools.cache
def postgres_unreachable() -> str | None:
    """Why the test server cannot be used, or None if it can."""
    try:
        psycopg.connect(POSTGRES_URL, connect_timeout=2).close()
    except psycopg.Error as exc:
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return f"PostgreSQL at {redact_url(POSTGRES_URL)} is unreachable: {first_line}"
    return None


@contextmanager
def postgres_schema() -> Iterator[str]:
    """Yield a store URL with a throwaway schema; drop the schema afterwards."""
    reason = postgres_unreachable()
    if reason is not None:
        pytest.skip(reason)
    schema = f"test_{uuid.uuid4().hex[:16]}"
    separator = "&" if "?" in POSTGRES_URL else "?"
    try:
        yield f"{POSTGRES_URL}{separator}schema={schema}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def sqlite_url(tmp_path: Path, query: str = "") -> str:
    return f"sqlite:///{tmp_path / 'store.db'}{query}"


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_schema() as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        with postgres_schema() as url:
            yield url


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    opened = open_store(store_url)
    try:
        yield opened
    finally:
        opened.close()
