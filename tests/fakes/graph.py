"""A stateful Microsoft Graph mail emulator, for the Graph actor, webhooks and sending.

Nothing installable here emulates Graph's delta, subscriptions and webhook pushes together
(../shared/reference/graph-oauth-multinode.md §6), so this module does. It is a plain ASGI
app (:class:`GraphEmulator`) that tests either serve on loopback with
:func:`serve_emulator` (the daemon then reaches it through the app's ``graph_base_url``,
exactly as production reaches graph.microsoft.com), or hand to ``httpx.ASGITransport``
for MockClock tests, where no socket may block the clock.

What it does, after Microsoft's documentation (docs-contrib: concepts/delta-query-messages,
change-notifications-*, throttling-limits, api/user-sendmail):

* one mailbox per ``/users/{mailbox}``, folders with well-known names (``inbox``,
  ``sentitems``, ``drafts``) and display names; ``mailFolders?$filter=displayName eq``;
  ``POST mailFolders`` creates one;
* every message has a regular id (changes when it moves) and an immutable id; responses
  carry immutable ids when the request says ``Prefer: IdType="ImmutableId"``
  (:attr:`GraphEmulator.requests_without_immutable_ids` counts the others);
* ``messages/delta`` pages by :attr:`GraphEmulator.page_size` with ``@odata.nextLink`` and
  ends with ``@odata.deltaLink``; a delta link returns what changed since (created,
  updated, and ``@removed`` for messages moved out or deleted);
  :meth:`GraphEmulator.expire_delta_tokens` makes every older link answer 410
  ``syncStateNotFound``;
* ``$value`` (the MIME), ``PATCH`` (``isRead``), ``move``, the size as the extended
  property ``Integer 0x0E08``;
* 429 with ``Retry-After`` for the next *n* requests (:meth:`GraphEmulator.throttle`),
  also inside ``$batch`` items; it records the most requests in flight per mailbox;
* subscriptions: creating one POSTs a ``validationToken`` to the notification URL and the
  lifecycle URL and requires it echoed (200, text/plain) within 10 s; expiry beyond
  :attr:`GraphEmulator.max_subscription_minutes` is refused (400); renew (PATCH),
  ``reauthorize``, delete; new mail is pushed to the notification URL (retried until
  :attr:`GraphEmulator.retry_window` has passed, then dropped and counted); lifecycle
  events on demand (:meth:`GraphEmulator.lifecycle`);
* ``sendMail`` with MIME (base64, text/plain; 400 ``ErrorMimeContentInvalidBase64String``;
  413 beyond 4 MB) or JSON; drafts (JSON), ``createReply``, ``send``; attachment upload
  sessions in chunks of at most 4 MB. Sent mail lands in ``sentitems`` and in
  :attr:`GraphEmulator.sent`.

Every request must carry ``Authorization: Bearer <token>`` with :attr:`GraphEmulator.token`
(401 otherwise), except upload URLs, which Graph pre-authorises.
"""

from __future__ import annotations

__all__ = ["GraphEmulator", "SentMail", "serve_emulator"]

import base64
import itertools
import json
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.parser import BytesHeaderParser
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlencode

import httpx
import hypercorn.config
import trio

from daemon.http.server import ConnectionCap, serve

MIME_LIMIT = 4 * 1024 * 1024
IMMUTABLE = 'IdType="ImmutableId"'
SIZE_PROPERTY = "Integer 0x0E08"
WELL_KNOWN = {"inbox": "Inbox", "sentitems": "Sent Items", "drafts": "Drafts",
              "deleteditems": "Deleted Items"}


class GraphError(Exception):
    def __init__(self, status: int, code: str, message: str = "",
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


@dataclass
class Message:
    immutable_id: str
    regular_id: str
    folder: str
    mime: bytes
    is_read: bool = False
    is_draft: bool = False
    changed: int = 0
    json: dict[str, Any] = field(default_factory=dict)
    attachments: list[dict[str, Any]] = field(default_factory=list)

    @property
    def internet_message_id(self) -> str | None:
        if self.json.get("internetMessageId"):
            return str(self.json["internetMessageId"])
        value = BytesHeaderParser().parsebytes(self.mime).get("Message-ID")
        return str(value).strip() if value else None


@dataclass
class Subscription:
    id: str
    resource: str
    change_type: str
    notification_url: str
    lifecycle_url: str | None
    client_state: str
    expires: datetime
    immutable: bool
    reauthorization_required: bool = False


@dataclass(frozen=True)
class SentMail:
    """One message Graph accepted for sending: how it came (``mime`` or ``json``)."""

    mailbox: str
    kind: str
    mime: bytes | None
    message: dict[str, Any]


@dataclass
class _Mailbox:
    folders: dict[str, str] = field(default_factory=dict)   # folder id -> display name
    messages: dict[str, Message] = field(default_factory=dict)  # immutable id -> message
    removed: dict[str, list[tuple[int, str]]] = field(default_factory=dict)
    in_flight: int = 0


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f0Z")


def _parse_iso(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


class GraphEmulator:
    """The emulator's state and its ASGI entry point; see the module docstring."""

    def __init__(self, *, token: str = "test-token", page_size: int = 2,
                 tenant_id: str = "bd1e3a1c-0000-4000-8000-1234567890ab") -> None:
        self.token = token
        self.tenant_id = tenant_id
        self.page_size = page_size
        self.base_url = "http://graph.invalid/v1.0"
        self.mailboxes: dict[str, _Mailbox] = {}
        self.subscriptions: dict[str, Subscription] = {}
        self.max_subscription_minutes = 10070
        self.notifications_enabled = True
        self.retry_window = 2.0
        self.dropped_notifications = 0
        self.delivered_notifications = 0
        self.sent: list[SentMail] = []
        self.requests: list[tuple[str, str]] = []
        self.requests_without_immutable_ids = 0
        self.max_in_flight = 0
        self.throttled_responses = 0
        self.reauthorized: list[str] = []
        #: Immutable ids still listed by delta but answering 404 (deleted meanwhile).
        self.gone: set[str] = set()
        self.push_client: httpx.AsyncClient | None = None
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._delta_floor = 0
        self._snapshots: dict[str, tuple[list[dict[str, Any]], int]] = {}
        self._throttle = 0
        self._retry_after = 1
        self._batch_throttle = 0
        #: Every n-th request gets 429 (0: never), for throttling under sustained load.
        self.throttle_every = 0
        self._counted = 0
        self._uploads: dict[str, dict[str, Any]] = {}
        self._nursery: trio.Nursery | None = None
        self.change = trio.Event()

    # -- scenario controls -------------------------------------------------------------

    def mailbox(self, name: str) -> _Mailbox:
        box = self.mailboxes.get(name.lower())
        if box is None:
            box = _Mailbox(folders={k: v for k, v in WELL_KNOWN.items()})
            self.mailboxes[name.lower()] = box
        return box

    def deliver(self, mailbox: str, mime: bytes, *, folder: str = "inbox",
                is_read: bool = False) -> str:
        """New mail in ``folder``; pushes ``created`` notifications. Returns its immutable id."""
        box = self.mailbox(mailbox)
        n = next(self._ids)
        message = Message(f"IMM{n:06d}", f"AAMk{n:06d}-{folder}", folder, mime,
                          is_read=is_read, changed=next(self._seq))
        box.messages[message.immutable_id] = message
        self._notify(mailbox, folder, message)
        self._changed()
        return message.immutable_id

    def throttle(self, count: int, retry_after: int = 1, *, in_batch: int = 0) -> None:
        """The next ``count`` requests (and ``in_batch`` $batch items) get 429."""
        self._throttle, self._retry_after, self._batch_throttle = count, retry_after, in_batch

    def expire_delta_tokens(self) -> None:
        """Every delta and next link issued so far answers 410 syncStateNotFound."""
        self._delta_floor = next(self._seq)
        self._snapshots.clear()

    def messages_in(self, mailbox: str, folder: str) -> list[Message]:
        return [m for m in self.mailbox(mailbox).messages.values() if m.folder == folder]

    def folder_id(self, mailbox: str, name: str) -> str | None:
        for fid, display in self.mailbox(mailbox).folders.items():
            if display.lower() == name.lower() or fid == name.lower():
                return fid
        return None

    def active_subscriptions(self, mailbox: str | None = None) -> list[Subscription]:
        subs = list(self.subscriptions.values())
        if mailbox is not None:
            subs = [s for s in subs if s.resource.lower().startswith(f"/users/{mailbox.lower()}/")
                    or s.resource.lower().startswith(f"users/{mailbox.lower()}/")]
        return subs

    async def lifecycle(self, subscription_id: str, event: str) -> int:
        """Send ``event`` to the subscription's lifecycle URL; return the HTTP status.

        ``subscriptionRemoved`` also deletes the subscription (as Graph does);
        ``reauthorizationRequired`` marks it until it is reauthorized or renewed.
        """
        sub = self.subscriptions[subscription_id]
        if event == "subscriptionRemoved":
            del self.subscriptions[subscription_id]
        if event == "reauthorizationRequired":
            sub.reauthorization_required = True
        body = {"value": [{"subscriptionId": sub.id, "lifecycleEvent": event,
                           "subscriptionExpirationDateTime": _iso(sub.expires),
                           "tenantId": self.tenant_id, "clientState": sub.client_state}]}
        assert sub.lifecycle_url is not None
        response = await self._client().post(sub.lifecycle_url, json=body)
        return response.status_code

    # -- pushing -----------------------------------------------------------------------

    def _client(self) -> httpx.AsyncClient:
        if self.push_client is None:
            self.push_client = httpx.AsyncClient(timeout=10)
        return self.push_client

    def _notify(self, mailbox: str, folder: str, message: Message) -> None:
        if not self.notifications_enabled or self._nursery is None:
            return
        for sub in self.active_subscriptions(mailbox):
            if not sub.resource.lower().endswith(f"mailfolders('{folder}')/messages"):
                continue
            mid = message.immutable_id if sub.immutable else message.regular_id
            resource = f"Users/{mailbox}/Messages/{mid}"
            body = {"value": [{
                "subscriptionId": sub.id, "changeType": "created",
                "subscriptionExpirationDateTime": _iso(sub.expires),
                "clientState": sub.client_state, "tenantId": self.tenant_id,
                "resource": resource,
                "resourceData": {"@odata.type": "#Microsoft.Graph.Message",
                                 "@odata.id": resource, "id": mid}}]}
            self._nursery.start_soon(self._push, sub.notification_url, body)

    async def _push(self, url: str, body: dict[str, Any]) -> None:
        """POST with retries until the retry window closes (Graph: 4 hours)."""
        deadline = trio.current_time() + self.retry_window
        delay = 0.05
        while trio.current_time() < deadline:
            try:
                response = await self._client().post(url, json=body)
                if response.status_code < 300:
                    self.delivered_notifications += 1
                    return
            except httpx.HTTPError:
                pass
            await trio.sleep(delay)
            delay = min(delay * 2, 0.5)
        self.dropped_notifications += 1

    def _changed(self) -> None:
        self.change.set()
        self.change = trio.Event()

    # -- ASGI --------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                event = await receive()
                if event["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif event["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        request = _Request(scope["method"], scope["path"],
                           parse_qs(scope["query_string"].decode(), keep_blank_values=True),
                           headers, body)
        status, out_headers, out = await self.handle(request)
        await send({"type": "http.response.start", "status": status,
                    "headers": [(k.encode(), v.encode()) for k, v in out_headers.items()]})
        await send({"type": "http.response.body", "body": out})

    async def handle(self, request: _Request) -> tuple[int, dict[str, str], bytes]:
        self.requests.append((request.method, request.path))
        mailbox = _mailbox_of(request.path)
        box = self.mailbox(mailbox) if mailbox else None
        if box is not None:
            box.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, box.in_flight)
        try:
            await trio.lowlevel.checkpoint()
            result = await self._dispatch(request)
            await trio.lowlevel.checkpoint()
            if isinstance(result, tuple):
                return result
            return 200, {"content-type": "application/json"}, json.dumps(result).encode()
        except GraphError as exc:
            return exc.status, {"content-type": "application/json", **exc.headers}, json.dumps(
                {"error": {"code": exc.code, "message": exc.message}}).encode()
        finally:
            if box is not None:
                box.in_flight -= 1

    async def _dispatch(self, request: _Request) -> Any:
        path = request.path.removeprefix("/v1.0")
        if path.startswith("/upload/"):
            return self._upload(request, path.removeprefix("/upload/"))
        if request.headers.get("authorization") != f"Bearer {self.token}":
            raise GraphError(401, "InvalidAuthenticationToken", "Access token is empty.")
        self._counted += 1
        periodic = self.throttle_every and self._counted % self.throttle_every == 0
        if self._throttle > 0 or periodic:
            self._throttle = max(0, self._throttle - 1)
            self.throttled_responses += 1
            raise GraphError(429, "ApplicationThrottled",
                             "Application is over its MailboxConcurrency limit.",
                             {"retry-after": str(self._retry_after)})
        immutable = IMMUTABLE in request.headers.get("prefer", "")
        if not immutable:
            self.requests_without_immutable_ids += 1
        if path == "/$batch":
            return await self._batch(request, immutable)
        return await self._route(request, path, immutable)

    async def _route(self, request: _Request, path: str, immutable: bool) -> Any:
        method = request.method
        if path.startswith("/subscriptions"):
            return await self._subscriptions(request, path, immutable)
        m = re.fullmatch(r"/users/([^/]+)(/.*)", path)
        if m is None:
            raise GraphError(404, "ResourceNotFound", path)
        mailbox, rest = m.group(1), m.group(2)
        box = self.mailbox(mailbox)
        if rest == "/mailFolders" and method == "GET":
            return self._list_folders(box, request)
        if rest == "/mailFolders" and method == "POST":
            return self._create_folder(box, request.json())
        m = re.fullmatch(r"/mailFolders/([^/]+)/messages/delta", rest)
        if m and method == "GET":
            return self._delta(mailbox, box, self._folder(box, m.group(1)), request, immutable)
        if rest == "/sendMail" and method == "POST":
            return self._send_mail(mailbox, box, request)
        if rest == "/messages" and method == "POST":
            return 201, *self._json(self._present(self._create_draft(box, request.json()),
                                                  immutable))
        if rest == "/messages" and method == "GET":
            return self._find_messages(box, request, immutable)
        m = re.fullmatch(r"/messages/([^/]+)(/.*)?", rest)
        if m is None:
            raise GraphError(404, "ResourceNotFound", rest)
        message = self._message(box, m.group(1))
        return self._message_route(mailbox, box, message, method, m.group(2) or "",
                                   request, immutable)

    def _message_route(self, mailbox: str, box: _Mailbox, message: Message, method: str,
                       sub: str, request: _Request, immutable: bool) -> Any:
        if sub == "" and method == "GET":
            return self._present(message, immutable, request.query.get("$expand", [""])[0])
        if sub == "/$value" and method == "GET":
            return 200, {"content-type": "message/rfc822"}, message.mime
        if sub == "" and method == "PATCH":
            return self._patch(message, request.json(), immutable)
        if sub == "/move" and method == "POST":
            target = self._folder(box, request.json()["destinationId"])
            self._move(box, message, target)
            return 201, *self._json(self._present(message, immutable))
        if sub == "/createReply" and method == "POST":
            return 201, *self._json(self._present(self._create_reply(box, message), immutable))
        if sub == "/send" and method == "POST":
            self._send_draft(mailbox, box, message)
            return 202, {}, b""
        if sub == "/attachments/createUploadSession" and method == "POST":
            return self._create_upload(message, request.json())
        if sub == "/attachments" and method == "POST":
            message.attachments.append(request.json())
            return 201, *self._json(request.json())
        raise GraphError(405, "MethodNotAllowed", f"{method} {sub}")

    @staticmethod
    def _json(value: Any) -> tuple[dict[str, str], bytes]:
        return {"content-type": "application/json"}, json.dumps(value).encode()

    # -- folders and messages ----------------------------------------------------------

    def _folder(self, box: _Mailbox, ref: str) -> str:
        ref_l = ref.lower()
        if ref_l in box.folders:
            return ref_l
        for fid in box.folders:
            if fid.lower() == ref_l:
                return fid
        raise GraphError(404, "ErrorInvalidIdMalformed", f"no folder {ref}")

    def _list_folders(self, box: _Mailbox, request: _Request) -> Any:
        flt = request.query.get("$filter", [""])[0]
        m = re.fullmatch(r"displayName eq '(.*)'", flt)
        items = [{"id": fid, "displayName": name} for fid, name in box.folders.items()
                 if m is None or name.lower() == m.group(1).replace("''", "'").lower()]
        return {"value": items}

    def _create_folder(self, box: _Mailbox, body: dict[str, Any]) -> Any:
        name = body["displayName"]
        if any(n.lower() == name.lower() for n in box.folders.values()):
            raise GraphError(409, "ErrorFolderExists", "A folder with the specified name "
                             "already exists.")
        fid = f"AAMkF{next(self._ids):06d}"
        box.folders[fid] = name
        return 201, *self._json({"id": fid, "displayName": name})

    def _message(self, box: _Mailbox, ref: str) -> Message:
        for message in box.messages.values():
            if message.immutable_id in self.gone:
                continue
            if ref in (message.immutable_id, message.regular_id):
                return message
        raise GraphError(404, "ErrorItemNotFound", "The specified object was not found in "
                         "the store.")

    def _present(self, message: Message, immutable: bool, expand: str = "") -> dict[str, Any]:
        out: dict[str, Any] = {
            "@odata.type": "#microsoft.graph.message",
            "id": message.immutable_id if immutable else message.regular_id,
            "isRead": message.is_read, "isDraft": message.is_draft,
            "parentFolderId": message.folder,
            "internetMessageId": message.internet_message_id,
            **{k: v for k, v in message.json.items() if k not in ("id",)}}
        if SIZE_PROPERTY in expand:
            out["singleValueExtendedProperties"] = [
                {"id": SIZE_PROPERTY, "value": str(len(message.mime))}]
        return out

    def _patch(self, message: Message, body: dict[str, Any], immutable: bool) -> Any:
        if "isRead" in body:
            message.is_read = bool(body["isRead"])
        for key in ("subject", "body", "toRecipients", "ccRecipients", "from",
                    "internetMessageHeaders", "internetMessageId"):
            if key in body:
                if key == "internetMessageId" and not message.is_draft:
                    raise GraphError(400, "ErrorInvalidPropertyUpdateSentMessage",
                                     "internetMessageId can only be updated on drafts")
                message.json[key] = body[key]
        message.changed = next(self._seq)
        return self._present(message, immutable)

    def _move(self, box: _Mailbox, message: Message, target: str) -> None:
        box.removed.setdefault(message.folder, []).append((next(self._seq),
                                                           message.immutable_id))
        old_regular = message.regular_id
        message.folder = target
        message.regular_id = f"{old_regular.split('-')[0]}-{target}"
        message.changed = next(self._seq)

    def _find_messages(self, box: _Mailbox, request: _Request, immutable: bool) -> Any:
        flt = request.query.get("$filter", [""])[0]
        m = re.fullmatch(r"internetMessageId eq '(.*)'", flt)
        found = [self._present(msg, immutable) for msg in box.messages.values()
                 if m is None or msg.internet_message_id == m.group(1).replace("''", "'")]
        return {"value": found}

    # -- delta -------------------------------------------------------------------------

    def _delta(self, mailbox: str, box: _Mailbox, folder: str, request: _Request,
               immutable: bool) -> Any:
        base = f"{self.base_url}/users/{quote(mailbox)}/mailFolders/{folder}/messages/delta"
        if "$skiptoken" in request.query:
            snapshot = self._snapshots.get(request.query["$skiptoken"][0])
            if snapshot is None:
                raise GraphError(410, "syncStateNotFound", "The sync state is not found.")
            items, until = snapshot
        else:
            since = 0
            if "$deltatoken" in request.query:
                since = int(request.query["$deltatoken"][0])
                if since < self._delta_floor:
                    raise GraphError(410, "syncStateNotFound", "The sync state is not found.")
            items, until = self._changes(box, folder, since, immutable), next(self._seq)
        page, rest = items[:self.page_size], items[self.page_size:]
        result: dict[str, Any] = {"value": page}
        if rest:
            token = secrets.token_urlsafe(8)
            self._snapshots[token] = (rest, until)
            result["@odata.nextLink"] = f"{base}?{urlencode({'$skiptoken': token})}"
        else:
            result["@odata.deltaLink"] = f"{base}?{urlencode({'$deltatoken': until})}"
        return result

    def _changes(self, box: _Mailbox, folder: str, since: int,
                 immutable: bool) -> list[dict[str, Any]]:
        items = [self._delta_item(m, immutable) for m in box.messages.values()
                 if m.folder == folder and m.changed > since and not m.is_draft]
        if since:
            present = {m.immutable_id for m in box.messages.values() if m.folder == folder}
            for seq, mid in box.removed.get(folder, []):
                if seq > since and mid not in present:
                    items.append({"id": mid, "@removed": {"reason": "deleted"}})
        return items

    def _delta_item(self, message: Message, immutable: bool) -> dict[str, Any]:
        return {"@odata.type": "#microsoft.graph.message",
                "id": message.immutable_id if immutable else message.regular_id,
                "isRead": message.is_read, "internetMessageId": message.internet_message_id}

    # -- subscriptions -----------------------------------------------------------------

    async def _subscriptions(self, request: _Request, path: str, immutable: bool) -> Any:
        if path == "/subscriptions" and request.method == "POST":
            return await self._create_subscription(request.json(), immutable)
        m = re.fullmatch(r"/subscriptions/([^/]+)(/reauthorize)?", path)
        if m is None or m.group(1) not in self.subscriptions:
            raise GraphError(404, "ResourceNotFound", "subscription not found")
        sub = self.subscriptions[m.group(1)]
        if m.group(2) and request.method == "POST":
            sub.reauthorization_required = False
            self.reauthorized.append(sub.id)
            return 200, {}, b""
        if request.method == "PATCH":
            sub.expires = self._expiry(request.json()["expirationDateTime"])
            sub.reauthorization_required = False
            return self._present_subscription(sub)
        if request.method == "DELETE":
            del self.subscriptions[sub.id]
            return 204, {}, b""
        return self._present_subscription(sub)

    def _expiry(self, value: str) -> datetime:
        expires = _parse_iso(value)
        if expires > _now() + timedelta(minutes=self.max_subscription_minutes):
            raise GraphError(400, "ExtensionError", "Subscription expiration can only be "
                             f"{self.max_subscription_minutes} minutes in the future.")
        return expires

    async def _create_subscription(self, body: dict[str, Any], immutable: bool) -> Any:
        for key in ("changeType", "notificationUrl", "resource", "expirationDateTime",
                    "clientState"):
            if key not in body:
                raise GraphError(400, "InvalidRequest", f"{key} is required")
        expires = self._expiry(body["expirationDateTime"])
        for url in filter(None, (body["notificationUrl"], body.get("lifecycleNotificationUrl"))):
            await self._validate(url)
        sub = Subscription(secrets.token_hex(16), body["resource"], body["changeType"],
                           body["notificationUrl"], body.get("lifecycleNotificationUrl"),
                           body["clientState"], expires, immutable)
        self.subscriptions[sub.id] = sub
        return 201, *self._json(self._present_subscription(sub))

    async def _validate(self, url: str) -> None:
        token = f"Validation: Testing client application reachability {secrets.token_hex(4)}"
        sep = "&" if "?" in url else "?"
        try:
            with trio.fail_after(10):
                response = await self._client().post(
                    f"{url}{sep}{urlencode({'validationToken': token})}",
                    headers={"content-type": "text/plain"})
        except (httpx.HTTPError, trio.TooSlowError) as exc:
            raise GraphError(400, "ValidationError", f"Subscription validation request "
                             f"failed: {type(exc).__name__}") from exc
        ok = (response.status_code == 200 and response.text == token
              and response.headers.get("content-type", "").startswith("text/plain"))
        if not ok:
            raise GraphError(400, "ValidationError", "Subscription validation request failed. "
                             "Notification endpoint must respond with 200 OK to validation "
                             "request.")

    def _present_subscription(self, sub: Subscription) -> dict[str, Any]:
        return {"id": sub.id, "resource": sub.resource, "changeType": sub.change_type,
                "notificationUrl": sub.notification_url,
                "lifecycleNotificationUrl": sub.lifecycle_url,
                "expirationDateTime": _iso(sub.expires)}

    # -- $batch ------------------------------------------------------------------------

    async def _batch(self, request: _Request, immutable: bool) -> Any:
        responses = []
        for item in request.json()["requests"]:
            if self._batch_throttle > 0:
                self._batch_throttle -= 1
                self.throttled_responses += 1
                responses.append({"id": item["id"], "status": 429,
                                  "headers": {"Retry-After": str(self._retry_after)},
                                  "body": {"error": {"code": "ApplicationThrottled"}}})
                continue
            sub = _Request(item["method"], unquote(item["url"].partition("?")[0]),
                           parse_qs(item["url"].partition("?")[2]),
                           {k.lower(): v for k, v in item.get("headers", {}).items()},
                           json.dumps(item.get("body")).encode() if "body" in item else b"")
            try:
                result = await self._route(sub, sub.path, immutable)
                status, body = (result[0], json.loads(result[2] or b"null")
                                if result[1].get("content-type") == "application/json"
                                else None) if isinstance(result, tuple) else (200, result)
            except GraphError as exc:
                status, body = exc.status, {"error": {"code": exc.code}}
            responses.append({"id": item["id"], "status": status, "body": body})
        return {"responses": responses}

    # -- sending -----------------------------------------------------------------------

    def _send_mail(self, mailbox: str, box: _Mailbox, request: _Request) -> Any:
        if request.headers.get("content-type", "").startswith("text/plain"):
            try:
                mime = base64.b64decode(request.body, validate=True)
            except ValueError as exc:
                raise GraphError(400, "ErrorMimeContentInvalidBase64String",
                                 "Invalid base64 string for MIME content.") from exc
            if len(mime) > MIME_LIMIT:
                raise GraphError(413, "ErrorMessageSizeExceeded", "The message exceeds the "
                                 "maximum supported size.")
            self._store_sent(box, Message(f"IMM{next(self._ids):06d}", "", "sentitems", mime))
            self.sent.append(SentMail(mailbox, "mime", mime, {}))
            return 202, {}, b""
        body = request.json()
        message = Message(f"IMM{next(self._ids):06d}", "", "sentitems", b"",
                          json=dict(body["message"]))
        self._store_sent(box, message)
        self.sent.append(SentMail(mailbox, "json", None, dict(body["message"])))
        return 202, {}, b""

    def _store_sent(self, box: _Mailbox, message: Message) -> None:
        message.regular_id = f"AAMk{message.immutable_id[3:]}-sentitems"
        message.is_read, message.changed = True, next(self._seq)
        box.messages[message.immutable_id] = message

    def _create_draft(self, box: _Mailbox, body: dict[str, Any]) -> Message:
        n = next(self._ids)
        message = Message(f"IMM{n:06d}", f"AAMk{n:06d}-drafts", "drafts", b"",
                          is_read=True, is_draft=True, json=dict(body), changed=next(self._seq))
        box.messages[message.immutable_id] = message
        return message

    def _create_reply(self, box: _Mailbox, original: Message) -> Message:
        headers = BytesHeaderParser().parsebytes(original.mime)
        mid = original.internet_message_id or ""
        refs = " ".join(filter(None, [str(headers.get("References", "")).strip(), mid]))
        draft = self._create_draft(box, {
            "subject": f"RE: {headers.get('Subject', '')}",
            "conversationId": f"conv-{original.immutable_id}"})
        draft.json["replyTo"] = {"inReplyTo": mid, "references": refs}
        return draft

    def _send_draft(self, mailbox: str, box: _Mailbox, message: Message) -> None:
        if not message.is_draft:
            raise GraphError(400, "ErrorInvalidRequest", "not a draft")
        size = sum(len(a.get("contentBytes", "")) for a in message.attachments)
        message.is_draft = False
        self._move(box, message, "sentitems")
        self.sent.append(SentMail(mailbox, "json", None, {
            **message.json, "attachments": list(message.attachments),
            "attachmentBytes": size}))

    def _create_upload(self, message: Message, body: dict[str, Any]) -> Any:
        item = body["AttachmentItem"]
        token = secrets.token_urlsafe(12)
        self._uploads[token] = {"message": message, "item": item, "data": b""}
        return 201, *self._json({
            "uploadUrl": f"{self.base_url.removesuffix('/v1.0')}/upload/{token}",
            "expirationDateTime": _iso(_now() + timedelta(hours=1)),
            "nextExpectedRanges": ["0-"]})

    def _upload(self, request: _Request, token: str) -> Any:
        upload = self._uploads.get(token)
        if upload is None:
            raise GraphError(404, "ItemNotFound", "upload session expired")
        if "authorization" in request.headers:
            raise GraphError(401, "InvalidAuthenticationToken",
                             "Do not send Authorization to an upload URL.")
        if len(request.body) > MIME_LIMIT:
            raise GraphError(413, "RequestEntityTooLarge", "chunks must be at most 4 MB")
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", request.headers.get("content-range", ""))
        if m is None or int(m.group(1)) != len(upload["data"]):
            raise GraphError(416, "InvalidRange", "unexpected Content-Range")
        upload["data"] += request.body
        total = int(m.group(3))
        if len(upload["data"]) < total:
            return {"nextExpectedRanges": [f"{len(upload['data'])}-"]}
        item = upload["item"]
        upload["message"].attachments.append({
            "name": item.get("name"), "contentType": item.get("contentType"),
            "isInline": item.get("isInline", False), "contentId": item.get("contentId"),
            "contentBytes": base64.b64encode(upload["data"]).decode()})
        del self._uploads[token]
        return 201, {}, b""


@dataclass(frozen=True)
class _Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError as exc:
            raise GraphError(400, "BadRequest", "Unable to read JSON request payload.") from exc


def _mailbox_of(path: str) -> str | None:
    m = re.match(r"(?:/v1\.0)?/users/([^/]+)/", path)
    return m.group(1).lower() if m else None


@asynccontextmanager
async def serve_emulator(emulator: GraphEmulator | None = None) -> AsyncIterator[GraphEmulator]:
    """Serve ``emulator`` on a loopback port; ``emulator.base_url`` is then its Graph URL."""
    emulator = emulator or GraphEmulator()
    config = hypercorn.config.Config()
    config.bind = ["127.0.0.1:0"]
    config.accesslog = None
    config.graceful_timeout = 0.5
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        urls = await nursery.start(partial_serve(emulator, config, stop))
        emulator.base_url = f"{urls[0]}/v1.0"
        emulator._nursery = nursery
        try:
            yield emulator
        finally:
            emulator._nursery = None
            stop.set()
            if emulator.push_client is not None:
                await emulator.push_client.aclose()
            nursery.cancel_scope.cancel()


def partial_serve(emulator: GraphEmulator, config: hypercorn.config.Config,
                  stop: trio.Event) -> Any:
    async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
        await serve(emulator, config, ConnectionCap(1000), shutdown_trigger=stop.wait,
                    task_status=task_status)
    return run
