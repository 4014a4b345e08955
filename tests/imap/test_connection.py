"""ImapSession (daemon/imap/connection.py): TLS settings, login errors, timeouts, cancel."""

from __future__ import annotations

import ssl
from types import SimpleNamespace

import pytest
import trio

from daemon.errors import AuthError, ConfigError, ConnectError
from daemon.imap.connection import (
    DEFAULT_IMAP_THREADS,
    imap_limiter,
    open_session,
    take_untagged,
    tls_context,
)
from tests.fakes.scripted_imap import ScriptedImap
from tests.imap.conftest import PASSWORD, settings_for


def tls_settings(**overrides) -> SimpleNamespace:
    values = dict(imap_host="mail.example.com", imap_tls="implicit", ca_file=None,
                  verify_certificates=True)
    values.update(overrides)
    return SimpleNamespace(**values)


def test_plain_text_is_refused_towards_a_remote_host():
    with pytest.raises(ConfigError, match="only allowed for loopback hosts"):
        tls_context(tls_settings(imap_tls="none"))
    assert tls_context(tls_settings(imap_tls="none", imap_host="127.0.0.1")) is None


def test_certificates_are_verified_by_default_against_the_given_ca(ca_file):
    context = tls_context(tls_settings(ca_file=ca_file))
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version is ssl.TLSVersion.TLSv1_2
    assert context.cert_store_stats()["x509_ca"] == 1  # only the private CA


def test_contexts_are_shared_between_connections(ca_file):
    first = tls_context(tls_settings(ca_file=ca_file))
    assert tls_context(tls_settings(ca_file=ca_file, imap_host="other.example.com")) is first
    assert tls_context(tls_settings(ca_file=ca_file, verify_certificates=False)) is not first
    assert tls_context(tls_settings()) is not first


def test_verification_can_be_switched_off_explicitly():
    context = tls_context(tls_settings(verify_certificates=False))
    assert context.verify_mode is ssl.CERT_NONE and not context.check_hostname


async def test_thread_limit_is_shared_within_a_run():
    assert imap_limiter() is imap_limiter()
    assert imap_limiter().total_tokens == DEFAULT_IMAP_THREADS


def test_take_untagged_removes_what_imaplib_kept_for_that_name_only():
    kept = {"EXISTS": [b"3", b"4"], "RECENT": [b"1"]}
    client = SimpleNamespace(_imap=SimpleNamespace(untagged_responses=kept))
    assert take_untagged(client, "EXISTS") == [b"3", b"4"]
    assert take_untagged(client, "EXISTS") == []
    assert kept == {"RECENT": [b"1"]}


async def test_refused_login_carries_the_servers_reason_and_no_password(scripted):
    server = ScriptedImap(
        login_reply=b"{tag} NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
    with pytest.raises(AuthError) as caught:
        await scripted(server)
    message = str(caught.value)
    assert message == (f"login refused by 127.0.0.1:{server.port}: "
                       "[AUTHENTICATIONFAILED] Authentication failed.")
    assert caught.value.__cause__ is None
    assert PASSWORD not in message and PASSWORD not in repr(caught.value.__context__)


async def test_starttls_is_required_when_configured(scripted):
    server = ScriptedImap()  # offers no STARTTLS
    with pytest.raises(ConnectError, match="does not offer STARTTLS"):
        await scripted(server, imap_tls="starttls")
    assert not any(b"LOGIN" in line for line in server.commands)


async def test_a_silent_server_times_out_instead_of_hanging(scripted):
    server = ScriptedImap(hang_on=frozenset({"NOOP"}))
    session = await scripted(server, read_timeout_seconds=0.2)
    with trio.fail_after(5), pytest.raises(ConnectError, match="timed out talking to"):
        await session.call(session.client.noop)
    assert session.broken


async def test_cancelling_a_call_abandons_it_and_closes_the_socket(scripted):
    server = ScriptedImap(hang_on=frozenset({"NOOP"}))
    session = await scripted(server, read_timeout_seconds=60)
    with trio.fail_after(5):
        with trio.move_on_after(0.05) as scope:
            await session.call(session.client.noop)
        await server.closed.wait()  # the abandoned thread's socket was shut down
    assert scope.cancelled_caught
    assert session.broken
    with pytest.raises(ConnectError, match="is closed"):
        await session.call(session.client.noop)


async def test_the_login_step_is_pluggable(nursery):
    server = ScriptedImap()
    await nursery.start(server.serve)
    used = []

    async def token_login(session) -> None:  # what an XOAUTH2 method would look like
        used.append(session.where)
        await session.call(session.client.login, "ann", "token-from-elsewhere", chain=False)

    async with open_session(settings_for(server), token_login, account="a") as session:
        assert session.has("IDLE")
    assert used == [f"127.0.0.1:{server.port}"]
    assert any(b"LOGIN ann" in line for line in server.commands)
