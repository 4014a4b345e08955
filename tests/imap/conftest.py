"""Fixtures for the IMAP plumbing tests: sessions against tests/fakes/scripted_imap.py."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trustme

from daemon.config import Secret
from daemon.imap.connection import ImapSession, open_session
from daemon.imap.login import password_login
from tests.fakes.scripted_imap import ScriptedImap

PASSWORD = "hunter2-very-secret"


def settings_for(server: ScriptedImap, **overrides: Any) -> SimpleNamespace:
    """The ImapConnection fields ImapSession reads, pointing at ``server``."""
    values: dict[str, Any] = dict(
        imap_host="127.0.0.1", imap_port=server.port, imap_tls="none", ca_file=None,
        verify_certificates=True, connect_timeout_seconds=5, read_timeout_seconds=5)
    values.update(overrides)
    return SimpleNamespace(**values)


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> Path:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(path)
    return path


@pytest.fixture
def server_tls(ca: trustme.CA):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return context


OpenScripted = Callable[..., Awaitable[ImapSession]]


@pytest.fixture
async def scripted(nursery: trio.Nursery) -> AsyncIterator[OpenScripted]:
    """``session = await scripted(server, **settings)``: serve ``server``, log in to it."""
    exits = []

    async def open_(server: ScriptedImap, **overrides: Any) -> ImapSession:
        await nursery.start(server.serve)
        manager = open_session(settings_for(server, **overrides),
                               password_login("ann", Secret(PASSWORD)), account="test")
        session = await manager.__aenter__()
        exits.append(manager)
        return session

    yield open_
    for manager in reversed(exits):
        await manager.__aexit__(None, None, None)
