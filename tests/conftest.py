"""Fixtures every test directory shares; the shared functions are in tests/helpers.py.

* ``dovecot`` (session): ONE throw-away Dovecot for the whole run (tests/fakes/dovecot.py);
  every test adds its own users, so tests stay independent. Skipped, with the reason, only
  when the dovecot binary is missing.
* ``own_dovecot`` (function): a private instance, for tests that stop or restart it.
* ``ca`` (session): one trustme CA; servers on loopback get certificates from it
  (``ca.issue_cert("127.0.0.1")``), clients trust its PEM.

Directory conftests add what only their tests need (tests/actors: a store and a fake
processor; tests/outbox: the outgoing-mail environment; tests/reliability: the drills).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import trustme

from tests.fakes.dovecot import Dovecot, dovecot_binary


def _running_dovecot() -> Iterator[Dovecot]:
    """A started throw-away Dovecot, cleaned up afterwards."""
    if dovecot_binary() is None:
        pytest.skip("dovecot is not installed (apt-get install dovecot-core dovecot-imapd)")
    server = Dovecot()
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def dovecot() -> Iterator[Dovecot]:
    yield from _running_dovecot()


@pytest.fixture
def own_dovecot() -> Iterator[Dovecot]:
    """A Dovecot of the test's own, for tests that stop or restart it."""
    yield from _running_dovecot()


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    return trustme.CA()
