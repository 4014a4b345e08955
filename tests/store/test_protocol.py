"""Both backends implement the protocol in base.py with the same signatures."""

from __future__ import annotations

import inspect

import pytest

from daemon.store import base
from daemon.store.postgres import PostgresStore
from daemon.store.sqlite import SqliteStore
from daemon.store.transaction import Transaction


def public_methods(cls: type) -> dict[str, inspect.Signature]:
    return {name: inspect.signature(fn) for name, fn in vars(cls).items()
            if callable(fn) and not name.startswith("_")}


@pytest.mark.parametrize(("protocol", "impl"), [
    (base.Tx, Transaction),
    (base.Store, SqliteStore), (base.Store, PostgresStore),
])
def test_signatures_match_the_protocol(protocol: type, impl: type):
    expected = public_methods(protocol)
    actual = public_methods(impl)
    missing = set(expected) - set(actual)
    assert not missing
    for name, signature in expected.items():
        got = actual[name]
        assert [(p.name, p.kind, p.default) for p in got.parameters.values()] == [
            (p.name, p.kind, p.default) for p in signature.parameters.values()], name
