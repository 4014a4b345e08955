"""The outbox's Graph transport against the emulator: MIME, JSON drafts, upload sessions."""

from __future__ import annotations

import base64
from email.message import EmailMessage

import httpx
import pytest

from daemon.errors import AuthError, PermanentError, TransientError
from daemon.graph.client import static_token
from daemon.graph.send import GraphTransport
from daemon.store.base import OutboxItem
from tests.graph.conftest import MAILBOX, graph_account, graph_app


def outgoing(*, attachment: bytes | None = None, in_reply_to: str = "<q@acme.example>"
             ) -> OutboxItem:
    msg = EmailMessage()
    msg["From"] = f"Support <{MAILBOX}>"
    msg["To"] = "ann@acme.example"
    msg["Subject"] = "Re: Printer"
    msg["Message-ID"] = "<pr.ours@demo.example>"
    msg["In-Reply-To"] = in_reply_to
    msg["References"] = in_reply_to
    msg.set_content("Fixed.")
    msg.add_alternative("<p>Fixed.</p>", subtype="html")
    if attachment is not None:
        msg.add_attachment(attachment, maintype="application", subtype="octet-stream",
                           filename="log.bin")
    return OutboxItem(account="support", recipient="ann@acme.example",
                      message_id="pr.ours@demo.example", raw=msg.as_bytes(), id=1)


def transport(emulator, **account) -> GraphTransport:
    return GraphTransport(graph_app(emulator), graph_account(**account),
                          static_token(emulator.token))


async def test_personal_mailbox_sends_our_mime_base64(emulator):
    item = outgoing()
    async with transport(emulator).session() as sender:
        reply = await sender.send(item)
    assert "sendMail" in reply
    (sent,) = emulator.sent
    assert sent.kind == "mime" and sent.mime == item.raw
    assert [m.internet_message_id for m in emulator.messages_in(MAILBOX, "sentitems")] == [
        "<pr.ours@demo.example>"]


async def test_over_4_mb_goes_through_a_draft_and_an_upload_session(emulator):
    blob = bytes(range(256)) * (5 * 1024 * 1024 // 256)   # 5 MiB
    item = outgoing(attachment=blob, in_reply_to="<not-in-mailbox@acme.example>")
    assert len(item.raw) > 4 * 1024 * 1024
    async with transport(emulator).session() as sender:
        await sender.send(item)
    (sent,) = emulator.sent
    assert sent.kind == "json"
    assert sent.message["internetMessageId"] == "<pr.ours@demo.example>"
    headers = {h["name"]: h["value"] for h in sent.message["internetMessageHeaders"]}
    assert headers["X-Postroom-In-Reply-To"] == "<not-in-mailbox@acme.example>"
    (attachment,) = sent.message["attachments"]
    assert base64.b64decode(attachment["contentBytes"]) == blob
    puts = [p for m, p in emulator.requests if m == "PUT"]
    assert len(puts) == 2   # two chunks, each below 4 MB


async def test_shared_mailbox_sends_json_from_the_shared_address(emulator):
    async with transport(emulator, username="agent@example.com").session() as sender:
        await sender.send(outgoing())
    (sent,) = emulator.sent
    assert sent.kind == "json"
    assert sent.message["from"] == {"emailAddress": {"address": MAILBOX}}
    assert sent.message["body"] == {"contentType": "HTML", "content": "<p>Fixed.</p>\n"}


async def test_bad_mime_is_permanent(emulator, monkeypatch):
    monkeypatch.setattr(base64, "b64encode", lambda data: b"!!not base64!!")
    async with transport(emulator).session() as sender:
        with pytest.raises(PermanentError, match="ErrorMimeContentInvalidBase64String"):
            await sender.send(outgoing())


async def test_throttled_beyond_retries_is_transient(emulator):
    emulator.throttle(10, retry_after=0)
    async with transport(emulator).session() as sender:
        with pytest.raises(TransientError, match="429"):
            await sender.send(outgoing())
    assert emulator.throttled_responses == 4
    assert emulator.sent == []


async def test_a_server_error_is_transient_at_once_and_not_resent(emulator):
    calls = []

    def failing(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        return httpx.Response(503, json={"error": {"code": "ServiceUnavailable"}})

    t = GraphTransport(graph_app(emulator), graph_account(), static_token("x"),
                       transport=httpx.MockTransport(failing))
    async with t.session() as sender:
        with pytest.raises(TransientError, match="503"):
            await sender.send(outgoing())
    assert len(calls) == 1


async def test_a_refused_token_is_an_auth_error(emulator):
    t = GraphTransport(graph_app(emulator), graph_account(), static_token("wrong"))
    async with t.session() as sender:
        with pytest.raises(AuthError):
            await sender.send(outgoing())
