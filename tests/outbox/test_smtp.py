"""SMTP on the wire against aiosmtpd: TLS modes, AUTH, and the error boundary."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import trustme

from daemon.config import Secret
from daemon.errors import AuthError, ConnectError
from daemon.outbox.smtp import SmtpDeferred, SmtpRejected, SmtpSession, SmtpSettings
from tests.fakes.smtp import FakeSmtp
from tests.outbox.conftest import SMTP_PASSWORD

RAW = (b"From: support@a.example\r\nTo: ann@acme.example\r\nSubject: Hi\r\n"
       b"Message-ID: <t1@a.example>\r\n\r\nHello.\r\n.leading dot\r\n")


def settings_for(server: FakeSmtp, **overrides) -> SmtpSettings:
    values = dict(host=server.host, port=server.port, tls=server.tls,
                  ca_file=server.ca_file if server.tls != "none" else None,
                  connect_timeout=5, read_timeout=5, username="support",
                  password=Secret(SMTP_PASSWORD), local_hostname="a.example")
    values.update(overrides)
    return SmtpSettings(**values)


@pytest.fixture
def server_factory(ca: trustme.CA, tmp_path: Path):
    started: list[FakeSmtp] = []

    def make(**kwargs) -> FakeSmtp:
        server = FakeSmtp(ca, tmp_path, **kwargs)
        server.start()
        started.append(server)
        return server

    yield make
    for server in started:
        server.stop()


async def send(settings: SmtpSettings, raw: bytes = RAW, recipient: str = "ann@acme.example",
               ) -> str:
    session = SmtpSession(settings, account="support")
    try:
        return await session.send("support@a.example", recipient, raw)
    finally:
        await session.aclose()


async def test_starttls_and_auth_plain(smtp: FakeSmtp):
    reply = await send(settings_for(smtp))
    assert reply == "250 2.0.0 Ok: queued as Q1"
    (got,) = smtp.received
    assert (got.mail_from, got.rcpt_tos, got.user, got.tls) == (
        "support@a.example", ("ann@acme.example",), "support", True)
    assert got.message["Subject"] == "Hi"
    assert b".leading dot" in got.data  # dot-stuffing undone by the server


async def test_implicit_tls_and_auth_login(server_factory):
    server = server_factory(tls="implicit", users={"support": SMTP_PASSWORD},
                            mechanisms=("LOGIN",))
    await send(settings_for(server))
    (got,) = server.received
    assert (got.user, got.tls) == ("support", True)


async def test_plain_text_towards_loopback_without_auth(server_factory):
    server = server_factory(tls="none")
    await send(settings_for(server, password=None))
    assert server.received[0].tls is False


async def test_one_session_carries_several_messages(smtp: FakeSmtp):
    session = SmtpSession(settings_for(smtp))
    try:
        for n in range(3):
            await session.send("support@a.example", f"r{n}@acme.example", RAW)
    finally:
        await session.aclose()
    assert [r.rcpt_tos for r in smtp.received] == [
        ("r0@acme.example",), ("r1@acme.example",), ("r2@acme.example",)]


async def test_a_wrong_password_is_an_auth_error_that_never_shows_the_password(smtp):
    with pytest.raises(AuthError) as caught:
        await send(settings_for(smtp, password=Secret("wrong-Pw-991")))
    assert "535" in str(caught.value)
    assert "wrong-Pw-991" not in repr(caught.value) + str(caught.value)
    assert caught.value.__cause__ is None
    assert smtp.received == []


async def test_4xx_is_deferred(smtp: FakeSmtp):
    smtp.defer(1)
    with pytest.raises(SmtpDeferred) as caught:
        await send(settings_for(smtp))
    assert caught.value.code == 451
    assert "451 4.3.0 Temporary failure" in str(caught.value)
    await send(settings_for(smtp))  # the next one goes through
    assert len(smtp.received) == 1


async def test_550_on_rcpt_is_rejected_with_code_text_and_recipient(smtp: FakeSmtp):
    smtp.reject("nobody@acme.example")
    with pytest.raises(SmtpRejected) as caught:
        await send(settings_for(smtp), recipient="nobody@acme.example")
    exc = caught.value
    assert (exc.code, exc.recipient) == (550, "nobody@acme.example")
    assert exc.text == "5.1.1 <nobody@acme.example>: Recipient address rejected: User unknown"
    assert f"{smtp.host}:{smtp.port} refused recipient nobody@acme.example: 550" in str(exc)


async def test_a_server_that_is_down_is_a_connect_error(smtp: FakeSmtp):
    smtp.stop()
    with pytest.raises(ConnectError, match="connection refused"):
        await send(settings_for(smtp))


async def test_an_untrusted_certificate_is_refused(smtp: FakeSmtp):
    with pytest.raises(ConnectError, match="certificate verify failed"):
        await send(replace(settings_for(smtp), ca_file=None))


async def test_no_starttls_on_offer_means_no_login_in_plain_text(server_factory):
    server = server_factory(tls="none", users={"support": SMTP_PASSWORD})
    with pytest.raises(ConnectError, match="does not offer STARTTLS"):
        await send(settings_for(server, tls="starttls"))
    assert server.received == []
