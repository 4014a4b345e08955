"""Fixtures for the mailbox-actor tests: a real Dovecot, a real store, a fake processor.

* ``dovecot`` (session): one throw-away Dovecot for the whole run (tests/fakes/dovecot.py);
  every test adds its own users, so tests stay independent. Skipped, with the reason, only
  when the dovecot binary is missing.
* ``own_dovecot`` (function): a private instance, for tests that stop or restart it.
* ``store``: a fresh SQLite store (AsyncStore) in tmp_path.
* ``processor``: :class:`tests.fakes.processor.FakeProcessor` over that store.
* ``imap_account`` / ``imap_connection``: real ``daemon.config`` models for a user.
* ``start_account``: runs ``run_imap_account`` under the real supervisor with a fast
  policy in the test's nursery, and returns its :class:`AccountHandle`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio

from daemon.actors.imap import run_imap_account
from daemon.actors.status import AccountHandle, AccountState, AccountStatus
from daemon.config import Account, ImapConnection, Secret
from daemon.store import AsyncStore, open_store
from daemon.supervisor import RestartPolicy, supervise
from tests.fakes.dovecot import Dovecot, MailUser, dovecot_binary
from tests.fakes.processor import FakeProcessor

#: Restart quickly in tests; park after two refused logins.
FAST_POLICY = RestartPolicy(base=0.05, cap=0.25, reset_after=60, park_after_auth_failures=2)


def _require_dovecot() -> None:
    if dovecot_binary() is None:
        pytest.skip("dovecot is not installed (apt-get install dovecot-core dovecot-imapd)")


def _running_dovecot() -> Iterator[Dovecot]:
    """A started throw-away Dovecot, cleaned up afterwards."""
    _require_dovecot()
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


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[AsyncStore]:
    async with AsyncStore(open_store(f"sqlite:///{tmp_path}/postroom.db")) as astore:
        yield astore


@pytest.fixture
def processor(store: AsyncStore) -> FakeProcessor:
    return FakeProcessor(store)


def make_connection(server: Dovecot, tls: str = "none", **overrides: Any) -> ImapConnection:
    """An ``[[imap_connections]]`` entry for ``server``: port chosen by ``tls``."""
    port = server.imaps_port if tls == "implicit" else server.imap_port
    values: dict[str, Any] = dict(
        id="dovecot", imap_host=server.host, imap_port=port, imap_tls=tls,
        smtp_host=server.host, ca_file=server.ca_file if tls != "none" else None,
        connect_timeout_seconds=5, read_timeout_seconds=10)
    values.update(overrides)
    return ImapConnection(**values)


def make_account(user: MailUser, **overrides: Any) -> Account:
    """An ``[[accounts]]`` entry logging in as ``user``."""
    values: dict[str, Any] = dict(
        id=f"acct-{user.name}", email=f"{user.name}@example.com", auth="dovecot",
        username=user.name, password=Secret(user.password))
    values.update(overrides)
    return Account(**values)


@pytest.fixture
def imap_connection(dovecot: Dovecot) -> ImapConnection:
    return make_connection(dovecot)


StartAccount = Callable[..., Awaitable[AccountHandle]]


@pytest.fixture
async def actor_nursery(store: AsyncStore) -> AsyncIterator[trio.Nursery]:
    """A nursery torn down (actors cancelled) before the store closes."""
    async with trio.open_nursery() as nursery:
        yield nursery
        nursery.cancel_scope.cancel()


@pytest.fixture
async def start_account(actor_nursery: trio.Nursery, store: AsyncStore,
                        processor: FakeProcessor) -> StartAccount:
    """Start a supervised IMAP actor; ``await start_account(account, connection)``."""

    async def start(account: Account, connection: ImapConnection, *,
                    policy: RestartPolicy = FAST_POLICY, **kwargs: Any) -> AccountHandle:
        handle = AccountHandle(AccountStatus(account=account.id, kind="imap"))
        run = partial(run_imap_account, account, connection, submit=processor.submit,
                      store=store, handle=handle, **kwargs)
        await actor_nursery.start(partial(supervise, run, handle, policy))
        return handle

    return start


async def wait_for_status(status: AccountStatus,
                          predicate: Callable[[AccountStatus], bool]) -> None:
    """Return once ``predicate(status)`` holds; re-checked on every status change."""
    while not predicate(status):
        await status.changed.wait()


async def wait_for_state(status: AccountStatus, state: AccountState) -> None:
    await wait_for_status(status, lambda s: s.state is state)
