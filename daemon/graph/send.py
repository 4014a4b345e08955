"""The outbox's Graph transport: ``sendMail`` with our MIME, or a JSON draft when it must.

Three ways out (docs-contrib: api/user-sendmail, api/message-send, api/attachment-
createuploadsession), chosen per item:

* **MIME** (a personal mailbox, at most 4 MB): ``POST /users/{me}/sendMail`` with the
  base64 of the bytes we built, ``Content-Type: text/plain``. Graph keeps our Message-ID,
  In-Reply-To and References and saves the Sent Items copy itself.
* **JSON draft, then send** (a shared mailbox, where Graph ignores the MIME ``From``; and
  any message over 4 MB): the draft carries ``from`` = the account's address, our
  ``internetMessageId`` (settable while it is a draft), the body and the recipient. When
  we reply to a message still in the mailbox, the draft is made with ``createReply`` on
  it, so Graph sets In-Reply-To/References and the conversation; otherwise our threading
  headers ride as ``X-Postroom-In-Reply-To``/``X-Postroom-References`` (Graph accepts only
  ``x-`` headers, at most 5). Attachments up to 3 MB go in the draft; larger ones through
  an upload session in chunks of at most 4 MB (the upload URL is pre-authorised: no token).
* The recipient is the outbox item's, exactly as SMTP's envelope is.

Errors (the outbox's semantics): 4xx → ``GraphRequestError`` (permanent: recorded on the
message follower), 429 → retried here after Retry-After, then transient; 5xx and network
failures → transient at once (a lost answer may hide an accepted message, so we do not
resend within a session); 401/403 → ``AuthError``.
"""

from __future__ import annotations

__all__ = ["CHUNK", "MIME_LIMIT", "GraphTransport"]

import base64
import email
import email.policy
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from typing import Any

import httpx

from daemon.graph.client import GraphClient, TokenProvider
from daemon.store.base import OutboxItem

MIME_LIMIT = 4 * 1024 * 1024
CHUNK = 4 * 1024 * 1024 - 64 * 1024  # a multiple of 320 KiB is advised; below 4 MB
INLINE_ATTACHMENT_LIMIT = 3 * 1024 * 1024


def _is_shared(account: Any) -> bool:
    return bool(account.username) and account.username.lower() != account.email.lower()


class GraphTransport:
    """Sends ``account``'s outbox items through Graph; see the module docstring."""

    def __init__(self, app: Any, account: Any, tokens: TokenProvider, *,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.app = app
        self.account = account
        self.tokens = tokens
        self.transport = transport

    def __repr__(self) -> str:
        return f"<GraphTransport {self.account.email} via {self.app.graph_base_url}>"

    @asynccontextmanager
    async def session(self) -> AsyncIterator[_GraphSender]:
        client = GraphClient(self.app.graph_base_url, self.account.email, self.tokens,
                             account=self.account.id, transport=self.transport,
                             retry_statuses=frozenset({429}), max_attempts=4)
        try:
            yield _GraphSender(client, self.account)
        finally:
            await client.aclose()


class _GraphSender:
    def __init__(self, client: GraphClient, account: Any) -> None:
        self.client = client
        self.account = account

    async def send(self, item: OutboxItem) -> str:
        """Deliver ``item``; a checkpoint. Raises as the module docstring says."""
        if not _is_shared(self.account) and len(item.raw) <= MIME_LIMIT:
            await self.client.request("POST", self.client.user_url("/sendMail"),
                                      content=base64.b64encode(item.raw),
                                      headers={"Content-Type": "text/plain"})
            return "202 accepted by Graph sendMail (MIME)"
        draft_id = await self._draft(item)
        await self.client.request("POST", self.client.user_url(f"/messages/{draft_id}/send"))
        return "202 accepted by Graph (JSON draft sent)"

    async def _draft(self, item: OutboxItem) -> str:
        message = email.message_from_bytes(item.raw, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        fields, large = _json_message(message, self.account, item.recipient)
        original = await self._original(str(message.get("In-Reply-To", "")).strip())
        if original is not None:
            draft = await self.client.json(
                "POST", self.client.user_url(f"/messages/{original}/createReply"), json={})
            fields.pop("internetMessageHeaders", None)
            subject = fields.pop("subject", None)
            attachments = fields.pop("attachments", [])
            await self.client.json("PATCH", self.client.user_url(f"/messages/{draft['id']}"),
                                   json={**fields, **({"subject": subject} if subject else {})})
            for attachment in attachments:
                await self.client.json(
                    "POST", self.client.user_url(f"/messages/{draft['id']}/attachments"),
                    json=attachment)
        else:
            draft = await self.client.json("POST", self.client.user_url("/messages"),
                                           json=fields)
        for part in large:
            await self._upload(draft["id"], part)
        return str(draft["id"])

    async def _original(self, in_reply_to: str) -> str | None:
        """The mailbox's copy of the message we answer, if it is still there."""
        if not in_reply_to:
            return None
        quoted = in_reply_to.replace("'", "''")
        body = await self.client.json("GET", self.client.user_url("/messages"), params={
            "$filter": f"internetMessageId eq '{quoted}'", "$select": "id"})
        found = body.get("value", [])
        return str(found[0]["id"]) if found else None

    async def _upload(self, draft_id: str, part: EmailMessage) -> None:
        data = part.get_payload(decode=True) or b""
        assert isinstance(data, bytes)
        session = await self.client.json(
            "POST", self.client.user_url(f"/messages/{draft_id}/attachments/createUploadSession"),
            json={"AttachmentItem": {"attachmentType": "file", "size": len(data),
                                     "name": part.get_filename() or "attachment",
                                     "contentType": part.get_content_type()}})
        url = session["uploadUrl"]
        for start in range(0, len(data), CHUNK):
            chunk = data[start:start + CHUNK]
            end = start + len(chunk) - 1
            await self.client.request("PUT", url, content=chunk, authorize=False, headers={
                "Content-Range": f"bytes {start}-{end}/{len(data)}",
                "Content-Type": "application/octet-stream"})


def _json_message(message: EmailMessage, account: Any, recipient: str
                  ) -> tuple[dict[str, Any], list[EmailMessage]]:
    """The Graph JSON for ``message``, and the attachments too large to inline."""
    html = message.get_body(preferencelist=("html",))
    plain = message.get_body(preferencelist=("plain",))
    body_part = html or plain
    body = {"contentType": "HTML" if body_part is html and html is not None else "Text",
            "content": body_part.get_content() if body_part is not None else ""}
    sender: dict[str, Any] = {"address": account.email}
    if account.name:
        sender["name"] = account.name
    headers = [{"name": f"X-Postroom-{name}", "value": str(message[name])}
               for name in ("In-Reply-To", "References") if message.get(name)]
    fields: dict[str, Any] = {
        "subject": str(message.get("Subject", "")),
        "body": body,
        "from": {"emailAddress": sender},
        "toRecipients": [{"emailAddress": {"address": recipient}}],
        "internetMessageId": str(message.get("Message-ID", "")).strip(),
        "internetMessageHeaders": headers}
    inline, large = [], []
    for part in message.iter_attachments():
        assert isinstance(part, EmailMessage)
        payload = part.get_payload(decode=True)
        data = payload if isinstance(payload, bytes) else b""
        if len(data) > INLINE_ATTACHMENT_LIMIT:
            large.append(part)
            continue
        inline.append({"@odata.type": "#microsoft.graph.fileAttachment",
                       "name": part.get_filename() or "attachment",
                       "contentType": part.get_content_type(),
                       "contentBytes": base64.b64encode(data).decode()})
    if inline:
        fields["attachments"] = inline
    if not headers:
        del fields["internetMessageHeaders"]
    return fields, large
