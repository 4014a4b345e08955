"""One folder's message delta: Graph's change log as the source of truth for intake.

Notifications are hints (Graph delivers ~80 % of them, and drops the rest after 4 hours
of retries); the folder's ``messages/delta`` is what we import from. A *round* pages
``@odata.nextLink`` until ``@odata.deltaLink`` and imports each page's unread messages:

1. For each unread message (never a ``@removed`` entry, never one already read): its size
   from the message resource (the extended property ``Integer 0x0E08``, since delta has
   no ``$expand``); too large → not downloaded, recorded as failed; else its MIME from
   ``/messages/{id}/$value``. Downloads run concurrently, bounded by the client's 4.
2. The page goes to ``submit_many``; the page's *next* link (nextLink, or the final
   deltaLink) rides on its last message as the checkpoint, so it is committed in the same
   transaction as the messages it covers. A page without new mail commits the link alone.
3. After the commit: imported and duplicate messages are marked read (``PATCH isRead`` in
   ``$batch``), failed ones moved to the failure folder (created when missing). The
   checkpoint lists the page's ids as ``pending`` until then, so a crash between commit
   and flags is finished at the start of the next round (as IMAP's ``flagged_uid``).

Source keys are ``graph:<account>:<folder>:<immutable id>``. A 410 (``syncStateNotFound``,
Graph lost our sync state) restarts from a fresh delta: every unread message comes again,
and the store's deduplication (source key, then Message-ID) imports nothing twice.

Checkpoint ``graph:<folder>:delta`` (JSON): ``{"link": <next or delta link>, "pending":
[<ids>]}``.
"""

from __future__ import annotations

__all__ = ["DeltaSync", "SyncState", "delta_key"]

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any
from urllib.parse import quote

import structlog
import trio

from daemon.errors import ProtocolError
from daemon.graph.client import GraphClient, GraphRequestError
from daemon.graph.folders import FolderIds
from daemon.messages import Checkpoint, Outcome, OutcomeStatus, RawMessage, SubmitMany, source_key
from daemon.store import AsyncStore
from daemon.store.base import Tx

log = structlog.get_logger("postroom.graph.delta")

SIZE_PROPERTY = "Integer 0x0E08"
SELECT = "id,isRead,receivedDateTime,internetMessageId"
#: ``$batch`` takes at most 20 requests.
BATCH_SIZE = 20


def delta_key(folder: str) -> str:
    return f"graph:{folder}:delta"


@dataclass(frozen=True)
class SyncState:
    """The committed position: the link to page next, and ids whose flags are pending."""

    link: str | None = None
    pending: tuple[str, ...] = ()

    def encode(self) -> str:
        return json.dumps({"link": self.link, "pending": list(self.pending)})

    @classmethod
    def decode(cls, value: str | None) -> SyncState:
        if not value:
            return cls()
        data = json.loads(value)
        return cls(data.get("link"), tuple(data.get("pending", ())))


@dataclass(frozen=True)
class _Item:
    id: str
    received_at: datetime | None


class DeltaSync:
    """Delta rounds for ``account.folder``; see the module docstring.

    Args:
        client: the mailbox's :class:`GraphClient`.
        account: the ``daemon.config.Account`` (id, folder, failure_folder,
            max_message_bytes, import_since).
        store: holds the checkpoint.
        submit_many: the processor's group commit.
        on_outcome: called with each committed outcome (the account's counters).
    """

    def __init__(self, client: GraphClient, account: Any, *, store: AsyncStore,
                 submit_many: SubmitMany, on_outcome: Callable[[Outcome], None]) -> None:
        self.client = client
        self.account = account
        self.store = store
        self.submit_many = submit_many
        self.on_outcome = on_outcome
        self.folders = FolderIds(client)
        self.resyncs = 0
        self._state: SyncState | None = None  # the committed checkpoint, once read

    async def round(self) -> int:
        """Page the delta to its end, importing as we go; return messages handled.

        A checkpoint. Cancelled mid-page: the page's messages already committed are found
        as duplicates next time. Raises ``GraphTransient``/``AuthError`` from the client,
        ``StoreBusyError`` from the store, ``ProtocolError`` for a link off our Graph URL.
        """
        folder_id = await self.folders.resolve(self.account.folder)
        state = await self._load()
        await self._settle(state, folder_id)
        link = state.link or self._initial_url(folder_id)
        handled = 0
        while True:
            try:
                page = await self.client.json("GET", self._checked(link))
            except GraphRequestError as exc:
                if exc.status != 410 or link == self._initial_url(folder_id):
                    raise
                self.resyncs += 1
                log.warning("graph.delta.resync", reason=exc.code, account=self.account.id)
                link = self._initial_url(folder_id)
                continue
            following = page.get("@odata.nextLink") or page.get("@odata.deltaLink")
            if not following:
                raise ProtocolError("Graph delta page without nextLink or deltaLink",
                                    account=self.account.id)
            handled += await self._import_page(page.get("value", []), following, folder_id)
            if "@odata.deltaLink" in page:
                return handled
            link = following

    def _initial_url(self, folder_id: str) -> str:
        url = (self.client.user_url(f"/mailFolders/{folder_id}/messages/delta")
               + f"?$select={SELECT}")
        since = self.account.import_since
        if since is not None:
            url += f"&$filter=receivedDateTime%20ge%20{since.isoformat()}T00:00:00Z"
        return url

    def _checked(self, link: str) -> str:
        """Only follow links to our own Graph URL: they carry the bearer token."""
        if not link.startswith(self.client.base_url + "/"):
            raise ProtocolError("Graph returned a link outside graph_base_url",
                                account=self.account.id)
        return link

    async def _import_page(self, values: Sequence[dict[str, Any]], following: str,
                           folder_id: str) -> int:
        items = [_Item(v["id"], _received(v)) for v in values
                 if "@removed" not in v and not v.get("isRead", False)]
        if not items:
            await self._save(SyncState(following))
            return 0
        fetched = await self._download(items)
        if not fetched:  # all gone meanwhile (deleted or moved): nothing to import
            await self._save(SyncState(following))
            return 0
        items = [item for item, _ in fetched]
        messages = [message for _, message in fetched]
        pending = SyncState(following, tuple(i.id for i in items))
        last = messages[-1]
        messages[-1] = replace(last, checkpoint=Checkpoint(
            self.account.id, delta_key(self.account.folder), pending.encode()))
        self._state = None  # the commit below moves it
        outcomes = await self.submit_many(messages)
        self._state = pending
        for outcome in outcomes:
            self.on_outcome(outcome)
        await self._flag([(i.id, o) for i, o in zip(items, outcomes, strict=True)], folder_id)
        await self._save(SyncState(following))
        return len(items)

    async def _download(self, items: Sequence[_Item]) -> list[tuple[_Item, RawMessage]]:
        """Each message's size, then its MIME unless too large; concurrently, in order.

        A message deleted or moved away since the delta listed it (404) is skipped: the
        next delta reports its removal, or lists it again in its new folder.
        """
        results: list[RawMessage | None] = [None] * len(items)

        async def one(index: int, item: _Item) -> None:
            try:
                results[index] = await self._fetch(item)
            except GraphRequestError as exc:
                if exc.status != 404:
                    raise
                log.info("graph.message.gone", id=item.id, account=self.account.id)

        async with trio.open_nursery() as nursery:
            for index, item in enumerate(items):
                nursery.start_soon(one, index, item)
        return [(item, r) for item, r in zip(items, results, strict=True) if r is not None]

    async def _fetch(self, item: _Item) -> RawMessage:
        key = source_key("graph", self.account.id, self.account.folder, item.id)
        size = await self._size(item.id)
        if size is not None and size > self.account.max_message_bytes:
            log.warning("graph.message.too_large", id=item.id, size=size,
                        limit=self.account.max_message_bytes, account=self.account.id)
            return RawMessage(self.account.id, key, b"", item.received_at,
                              folder=self.account.folder, too_large=size)
        response = await self.client.request("GET", self.client.user_url(
            f"/messages/{item.id}/$value"))
        return RawMessage(self.account.id, key, response.content, item.received_at,
                          folder=self.account.folder)

    async def _size(self, message_id: str) -> int | None:
        body = await self.client.json("GET", self.client.user_url(f"/messages/{message_id}"),
                                      params={"$select": "id", "$expand":
                                              "singleValueExtendedProperties($filter=id eq "
                                              f"'{SIZE_PROPERTY}')"})
        for prop in body.get("singleValueExtendedProperties", []) or []:
            if prop.get("id", "").lower() == SIZE_PROPERTY.lower():
                return int(prop["value"])
        return None

    # -- flags after the commit --------------------------------------------------------

    async def _flag(self, done: Sequence[tuple[str, Outcome]], folder_id: str) -> None:
        read = [mid for mid, o in done if o.status is not OutcomeStatus.FAILED]
        failed = [mid for mid, o in done if o.status is OutcomeStatus.FAILED]
        await self._batch([self._patch_read(mid) for mid in read])
        if failed:
            target = await self.folders.ensure(self.account.failure_folder)
            await self._batch([self._move(mid, target) for mid in failed])

    async def _settle(self, state: SyncState, folder_id: str) -> None:
        """Finish the flags a crash left pending (read what the store says became of each)."""
        if not state.pending:
            return
        account, folder = self.account.id, self.account.folder

        def statuses(tx: Tx) -> dict[str, str | None]:
            out = {}
            for mid in state.pending:
                record = tx.get_raw(source_key("graph", account, folder, mid))
                out[mid] = record.status if record is not None else None
            return out

        found = await self.store.run(statuses)
        done = [(mid, Outcome(mid, OutcomeStatus(status))) for mid, status in found.items()
                if status is not None]
        log.info("graph.delta.settle", pending=len(state.pending), account=account)
        await self._flag(done, folder_id)
        await self._save(SyncState(state.link))

    def _patch_read(self, message_id: str) -> dict[str, Any]:
        return {"method": "PATCH", "url": f"/users/{quote(self.client.mailbox)}/messages/"
                                          f"{message_id}",
                "body": {"isRead": True}, "headers": {"Content-Type": "application/json"}}

    def _move(self, message_id: str, folder_id: str) -> dict[str, Any]:
        return {"method": "POST",
                "url": f"/users/{quote(self.client.mailbox)}/messages/{message_id}/move",
                "body": {"destinationId": folder_id},
                "headers": {"Content-Type": "application/json"}}

    async def _batch(self, requests: list[dict[str, Any]]) -> None:
        for start in range(0, len(requests), BATCH_SIZE):
            chunk = [{**r, "id": str(i)} for i, r in enumerate(requests[start:start + BATCH_SIZE])]
            responses = await self.client.batch(chunk)
            for rid, response in responses.items():
                if int(response["status"]) >= 400:
                    # Gone (deleted meanwhile) or refused: the import stands; logged only.
                    log.warning("graph.flag.failed", status=response["status"],
                                request=chunk[int(rid)]["url"], account=self.account.id)

    # -- checkpoint --------------------------------------------------------------------

    async def _load(self) -> SyncState:
        """The checkpoint: read from the store once, then kept in step by every commit."""
        if self._state is None:
            account, key = self.account.id, delta_key(self.account.folder)
            self._state = SyncState.decode(await self.store.run(
                lambda tx: tx.get_checkpoint(account, key)))
        return self._state

    async def _save(self, state: SyncState) -> None:
        account, key, value = self.account.id, delta_key(self.account.folder), state.encode()
        self._state = None  # unknown until the write commits (re-read if it fails)
        await self.store.run(lambda tx: tx.set_checkpoint(account, key, value))
        self._state = state


def _received(value: dict[str, Any]) -> datetime | None:
    text = value.get("receivedDateTime")
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None
