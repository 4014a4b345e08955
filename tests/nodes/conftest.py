"""Fixtures: a throwaway PostgreSQL schema, and a store that runs in the Trio thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio

from daemon.store.sqlite import SqliteStore
from tests.store.conftest import postgres_schema


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_schema() as url:
        yield url


class DirectStore:
    """An AsyncStore stand-in running each transaction in the Trio thread, so Trio's
    MockClock sees no worker threads. ``cut = True`` makes every call hang, as a
    database that cannot be reached does (until the TCP timeouts, much later)."""

    def __init__(self) -> None:
        self.store = SqliteStore(":memory:")
        self.cut = False
        self.calls = 0

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        await trio.lowlevel.checkpoint()
        if self.cut:
            await trio.sleep_forever()
        self.calls += 1
        with self.store.transaction() as tx:
            return fn(tx, *args)


@pytest.fixture
def direct_store() -> Iterator[DirectStore]:
    store = DirectStore()
    yield store
    store.store.close()
