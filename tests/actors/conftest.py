"""Fixtures for the actor tests: a real store, a fake processor, the outgoing-mail env.

The Dovecot (``dovecot``, ``own_dovecot``) and the ``ca`` come from tests/conftest.py.

* ``store``: a fresh SQLite store (AsyncStore) in tmp_path.
* ``processor``: :class:`tests.fakes.processor.FakeProcessor` over that store.
* ``imap_account`` / ``imap_connection``: real ``daemon.config`` models for a user.
* ``start_account``: runs ``run_imap_account`` under the real supervisor with a fast
  policy in the test's nursery, and returns its :class:`AccountHandle`.
* ``make_env`` / ``smtp``: the outbox actor's environment, from tests/outbox/conftest.py
  (one definition; imported here so that tests/actors/test_outbox.py can use it).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
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
from tests.fakes.dovecot import Dovecot, MailUser
from tests.fakes.processor import FakeProcessor
from tests.helpers import wait_for_status
from tests.outbox.conftest import make_env, smtp  # noqa: F401  (fixtures, see above)

#: Restart quickly in tests; park after two refused logins.
FAST_POLICY = RestartPolicy(base=0.05, cap=0.25, reset_after=60, park_after_auth_failures=2)


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


async def wait_for_state(status: AccountStatus, state: AccountState) -> None:
    await wait_for_status(status, lambda s: s.state is state)
