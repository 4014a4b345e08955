"""The migration lists and pending()."""

from __future__ import annotations

import pytest

from daemon.errors import StoreError
from daemon.store import migrations
from daemon.store.migrations import Migration, pending


def test_both_backends_have_the_same_steps():
    assert [(m.version, m.description) for m in migrations.SQLITE] == [
        (m.version, m.description) for m in migrations.POSTGRES]


@pytest.mark.parametrize("steps", [migrations.SQLITE, migrations.POSTGRES])
def test_statements_are_single(steps):
    for step in steps:
        for statement in step.statements:
            assert ";" not in statement, (step.version, statement)


def test_pending():
    steps = (Migration(1, "a", ("x",)), Migration(2, "b", ("y",)))
    assert pending(steps, 0) == list(steps)
    assert pending(steps, 1) == [steps[1]]
    assert pending(steps, 2) == []
    with pytest.raises(StoreError, match="newer"):
        pending(steps, 3)


def test_pending_refuses_gaps_and_disorder():
    with pytest.raises(StoreError, match="numbered"):
        pending((Migration(1, "a", ()), Migration(3, "c", ())), 0)
    with pytest.raises(StoreError, match="numbered"):
        pending((Migration(2, "b", ()), Migration(1, "a", ())), 0)
