"""The processor: raw bytes in, committed CRM objects out, one message at a time.

State owned: the plugin manager reference, the processing context, a nursery for
after-commit plugin hooks.

Receives: ``(list of RawMessage, reply channel)`` pairs on a bounded memory channel
(:data:`INBOX_SIZE`). A full inbox blocks :meth:`Processor.submit` and
:meth:`Processor.submit_many`, which is how intake feels backpressure.

Sends: exactly one reply per submission — the :class:`~daemon.messages.Outcome` of each
message, sent only after the transaction committed, or the exception that prevented any
commit (``TransientError`` such as ``StoreBusyError``: the intake backs off and fetches
again).

Group commit: :meth:`submit_many` imports a whole batch (an IMAP fetch window, a Maildir
scan) in ONE transaction, in order, which saves a third of the store's time per message.
If anything in the batch fails, the transaction rolls back and the batch is redone one
message per transaction, so a bad message still only fails itself. A full disk
(:func:`~daemon.errors.store_is_full`) is redone the same way, because single messages
may still fit: those that do are committed, those that do not are skipped, and the
submission then raises the ``StoreBusyError`` (the intake backs off and fetches again; the
committed ones come back as already stored). A lock is not: every message would wait the
busy timeout again.

Pipeline per message (each step a function; hooks at each decision)::

    too large? -> record failure
    parse -> classify (both in a worker thread unless the message is cheap, see
    :func:`parse_inline`) -> postroom_classify -> postroom_allow_sender
    -> store.run(import_message)   # identify, map, followers, files, raw, checkpoint
    -> reply -> postroom_message_imported (in the background, under a timeout)

Any exception from parsing or importing other than a ``TransientError`` becomes a failure
record (raw bytes kept, error stored, checkpoint advanced) and the outcome ``FAILED``:
one bad message never blocks the mailbox.

Cancellation: a message whose transaction already started in the store thread commits or
rolls back there; the reply is then dropped if the submitter has gone.
"""

from __future__ import annotations

__all__ = ["INBOX_SIZE", "Processor"]

import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pluggy
import structlog
import trio

from daemon.config import Config
from daemon.crm.importer import (
    ImportJob,
    ImportResult,
    Processing,
    import_message,
    record_failure,
)
from daemon.errors import TransientError, store_is_full
from daemon.limiters import shared_limiter
from daemon.mail.classify import classify
from daemon.mail.ids import parse_message_id
from daemon.mail.model import Classification, MessageKind, ParsedMessage
from daemon.mail.parse import parse_message
from daemon.messages import Outcome, OutcomeStatus, RawMessage
from daemon.metrics import IMPORT_SECONDS
from daemon.plugins.manager import call_async_hook, call_hook
from daemon.store.asyncstore import AsyncStore

if TYPE_CHECKING:
    from daemon.mail.ids import MessageToken
    from daemon.plugins.events import MessageImported
    from daemon.store.base import Tx

log = structlog.get_logger("postroom.processor")

INBOX_SIZE = 64
#: Messages up to this size are parsed and classified in the Trio thread: a worker
#: thread hop costs more than their parse (well under 5 ms, whatever they contain).
INLINE_BYTES = 16 * 1024
#: Messages above this size always go to a worker thread.
PARSE_IN_THREAD_ABOVE = 128 * 1024
#: Between the two, the estimated cost (bytes, plus a weight per encoded word, MIME
#: delimiter and ``@``, the things that cost per occurrence) decides.
INLINE_COST = 64 * 1024
#: Worker threads parsing at once, shared by the processor and ``postroom deliver``.
parse_limiter = shared_limiter("postroom.parse", 2)
LOOP_HEADER = "X-Postroom-Loop"

_Result = list[Outcome] | BaseException
_Reply = trio.MemorySendChannel[_Result]


class Processor:
    """See the module docstring. Construct, ``await nursery.start(p.run)``, then submit."""

    def __init__(self, config: Config, store: AsyncStore, pm: pluggy.PluginManager, *,
                 secret: bytes, queue_mail: Callable[..., list[int]] | None = None,
                 mail_queued: Callable[[], None] | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """See the class docstring.

        Args:
            queue_mail: composes and queues automatic replies and notifications inside
                the import transaction (:func:`daemon.outbox.queue.mail_queuer`).
            mail_queued: called (in the Trio thread) after a commit that queued mail,
                to wake the outbox at once.
        """
        self.config = config
        self.store = store
        self.pm = pm
        self._secret = secret
        self._installation = config.daemon.installation_id
        self._accounts = {a.id: a for a in config.accounts}
        self.own_addresses = frozenset(
            address.lower() for a in config.accounts for address in (a.email, *a.aliases))
        self.ctx = Processing(runtime=config.runtime, pm=pm, accounts=self._accounts,
                              own_addresses=self.own_addresses,
                              conversation_of_token=self._conversation_of_token,
                              follower_of_token=self._follower_of_token,
                              queue_mail=queue_mail, now=now)
        self._mail_queued = mail_queued
        self._send, self._receive = trio.open_memory_channel[
            tuple[Sequence[RawMessage], _Reply]](INBOX_SIZE)
        self._hooks: trio.Nursery | None = None

    # -- the Submit interface ---------------------------------------------------------

    async def submit(self, raw: RawMessage) -> Outcome:
        """Hand ``raw`` to the running processor; return once its result is committed.

        A checkpoint; blocks while the inbox is full. Raises the ``TransientError`` that
        prevented a commit, in which case nothing was stored.
        """
        (outcome,) = await self.submit_many([raw])
        return outcome

    async def submit_many(self, raws: Sequence[RawMessage]) -> list[Outcome]:
        """Like :meth:`submit` for several messages, imported in order in one transaction.

        Returns their outcomes in the same order once all are committed.
        """
        reply_send, reply_receive = trio.open_memory_channel[_Result](1)
        await self._send.send((list(raws), reply_send))
        async with reply_receive:
            result = await reply_receive.receive()
        if isinstance(result, BaseException):
            raise result
        return result

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
                  ) -> None:
        """Process messages until cancelled."""
        async with trio.open_nursery() as hooks:
            self._hooks = hooks
            task_status.started()
            async with self._receive:
                async for raws, reply in self._receive:
                    result: _Result
                    began = time.perf_counter()
                    try:
                        result = await self.process_many(raws)
                    except TransientError as exc:
                        result = exc
                    _observe_imports(time.perf_counter() - began, len(raws))
                    try:
                        reply.send_nowait(result)
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        log.info("processor.reply_dropped", count=len(raws))

    # -- the pipeline -----------------------------------------------------------------

    async def process(self, raw: RawMessage) -> Outcome:
        """Run the whole pipeline for one message; usable without :meth:`run` (deliver).

        Raises TransientError when the store could not commit anything.
        """
        if raw.too_large is not None:
            limit = self._accounts[raw.account].max_message_bytes
            return await self._fail(raw, f"message of {raw.too_large} bytes exceeds "
                                         f"max_message_bytes ({limit}); not read")
        try:
            job = await self._prepare(raw)
            [result], queued = await self.store.run(_import_all, self.ctx, [job])
        except TransientError:
            raise
        except Exception as exc:
            log.error("message.failed", account=raw.account, source_key=raw.source_key,
                      error=f"{type(exc).__name__}: {exc}",
                      where=traceback.extract_tb(exc.__traceback__)[-1].name)
            return await self._fail(raw, f"{type(exc).__name__}: {exc}")
        self._committed(job, result, queued)
        return result.outcome

    async def process_many(self, raws: Sequence[RawMessage]) -> list[Outcome]:
        """:meth:`process` for a batch, in one transaction when all goes well."""
        if len(raws) == 1 or any(raw.too_large is not None for raw in raws):
            return [await self.process(raw) for raw in raws]
        try:
            jobs = [await self._prepare(raw) for raw in raws]
            results, queued = await self.store.run(_import_all, self.ctx, jobs)
        except TransientError as exc:
            if not store_is_full(exc):
                raise
            log.warning("processor.batch_fallback", count=len(raws), reason="store full",
                        error=str(exc))
            return await self._one_by_one(raws)
        except Exception as exc:
            log.warning("processor.batch_fallback", count=len(raws),
                        reason="a message failed", error=f"{type(exc).__name__}: {exc}")
            return await self._one_by_one(raws)
        for job, result in zip(jobs, results, strict=True):
            self._committed(job, result, queued)
            queued = False  # wake the outbox once per transaction
        return [result.outcome for result in results]

    async def retry(self, source_key: str) -> Outcome:
        """Import a failed message again from its stored bytes ("Retry"); idempotent.

        The failed record is deleted and the message imported in one transaction, so a
        crash, or the same failure again, leaves the failed record (and its bytes) where
        they were; a new failure only updates its ``error``. A message that is not failed
        (already retried, or never failed) answers its recorded outcome unchanged.

        Raises:
            KeyError: no raw message under ``source_key``.
            ValueError: its bytes were never downloaded (too large).
            TransientError: the store could not commit.
        """
        record = await self.store.run(lambda tx: tx.get_raw(source_key))
        if record is None:
            raise KeyError(source_key)
        if record.status != OutcomeStatus.FAILED.value:
            return Outcome(source_key, OutcomeStatus(record.status),
                           record.conversation_message_id, reason=record.error)
        if not record.raw:
            raise ValueError(f"{source_key}: no bytes stored (the message was too large)")
        raw = RawMessage(account=record.account, source_key=source_key, raw=record.raw,
                         received_at=record.received_at, folder=record.folder)
        try:
            job = await self._prepare(raw)
            [result], queued = await self.store.run(_reimport, self.ctx, job)
        except TransientError:
            raise
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            log.error("message.failed", account=raw.account, source_key=source_key,
                      error=error, where="retry")
            await self.store.run(lambda tx: tx.set_raw_result(
                source_key, status=OutcomeStatus.FAILED.value, error=error))
            return Outcome(source_key, OutcomeStatus.FAILED, reason=error)
        self._committed(job, result, queued)
        log.info("message.retried", account=raw.account, source_key=source_key,
                 status=result.outcome.status.value)
        return result.outcome

    async def _one_by_one(self, raws: Sequence[RawMessage]) -> list[Outcome]:
        """Each message in its own transaction, skipping those a full store refuses.

        Raises:
            StoreBusyError: the first "full" refusal, after all the others were tried.
        """
        outcomes, full = [], None
        for raw in raws:
            try:
                outcomes.append(await self.process(raw))
            except TransientError as exc:
                if not store_is_full(exc):
                    raise
                log.warning("processor.store_full", account=raw.account,
                            source_key=raw.source_key, size=len(raw.raw))
                full = full or exc
        if full is not None:
            raise full
        return outcomes

    async def _prepare(self, raw: RawMessage) -> ImportJob:
        """Parse and classify; everything before the store.

        The CPU work (parsing and the built-in rules) runs in a worker thread unless the
        message is cheap, so no message holds the event loop (``/livez``, the watchdog)
        for long; the plugin hooks then run here, in the Trio thread.
        """
        if parse_inline(raw.raw):
            parsed, verdict = self._parse_and_classify(raw.raw)
        else:
            parsed, verdict = await trio.to_thread.run_sync(
                self._parse_and_classify, raw.raw, limiter=parse_limiter())
        classification = self._plugin_classify(parsed, verdict, raw.account)
        return ImportJob(raw, parsed, classification,
                         self._may_create_parent(parsed, classification, raw.account))

    def _committed(self, job: ImportJob, result: ImportResult, queued: bool) -> None:
        """Log the outcome, wake the outbox if mail was queued, start after-commit hooks."""
        if queued and self._mail_queued is not None:
            self._mail_queued()
        outcome, raw = result.outcome, job.raw
        log.info("message." + outcome.status.value, account=raw.account,
                 source_key=raw.source_key, message_id=job.parsed.message_id,
                 conversationmessage=outcome.conversation_message_id,
                 kind=job.classification.kind.value, reason=outcome.reason)
        if (result.event is not None and self._hooks is not None
                and self.pm.hook.postroom_message_imported.get_hookimpls()):
            # No task per message when no plugin listens (a Trio task costs ~30 us).
            self._hooks.start_soon(self._imported_hook, result.event)

    def classify(self, parsed: ParsedMessage, account: str) -> Classification:
        """The built-in classification, then the ``postroom_classify`` hook."""
        return self._plugin_classify(parsed, self._builtin_classify(parsed), account)

    def _builtin_classify(self, parsed: ParsedMessage) -> Classification:
        """The built-in rules only; thread-safe (reads nothing that changes)."""
        return classify(parsed, own_addresses=self.own_addresses,
                        loop_token=self._installation, verify_message_id=self._is_ours)

    def _parse_and_classify(self, raw: bytes) -> tuple[ParsedMessage, Classification]:
        """Parse, then the built-in rules: the part of :meth:`_prepare` a thread may run."""
        parsed = parse_message(raw)
        return parsed, self._builtin_classify(parsed)

    def _plugin_classify(self, parsed: ParsedMessage, verdict: Classification,
                         account: str) -> Classification:
        """The ``postroom_classify`` hook's override of ``verdict``, if it gives one."""
        override = call_hook(self.pm, "postroom_classify", message=parsed,
                             classification=verdict, account=self._accounts.get(account))
        return override if isinstance(override, Classification) else verdict

    def _may_create_parent(self, parsed: ParsedMessage, verdict: Classification,
                           account: str) -> bool:
        if verdict.kind is not MessageKind.AUTOMATIC:
            return verdict.kind is MessageKind.NORMAL
        allowed = call_hook(self.pm, "postroom_allow_sender", message=parsed,
                            classification=verdict, account=self._accounts.get(account))
        if allowed is None:
            return bool(self.config.runtime.allow_automatic_emails)
        return bool(allowed)

    async def _fail(self, raw: RawMessage, error: str) -> Outcome:
        return await self.store.run(record_failure, self.ctx, raw, error)

    async def _imported_hook(self, event: MessageImported) -> None:
        await call_async_hook(self.pm, "postroom_message_imported", event=event)

    # -- our own Message-IDs ----------------------------------------------------------

    def _token(self, message_id: str) -> MessageToken | None:
        token = parse_message_id(self._secret, message_id)
        if token is None or token.installation != self._installation:
            return None
        return token

    def _is_ours(self, message_id: str) -> bool:
        return self._token(message_id) is not None

    def _conversation_of_token(self, message_id: str) -> int | None:
        token = self._token(message_id)
        return token.conversation_id if token is not None else None

    def _follower_of_token(self, message_id: str) -> int | None:
        token = self._token(message_id)
        return token.message_follower_id if token is not None else None


def parse_inline(raw: bytes) -> bool:
    """True when parsing and classifying ``raw`` is cheap enough for the event loop.

    Size alone does not say it: a 60 KB message of encoded words, MIME delimiters or
    addresses costs per occurrence. Counting those is C-speed and only done in the
    middle band (:data:`INLINE_BYTES` .. :data:`PARSE_IN_THREAD_ABOVE`).
    """
    size = len(raw)
    if size <= INLINE_BYTES:
        return True
    if size > PARSE_IN_THREAD_ABOVE:
        return False
    cost = size + 512 * raw.count(b"=?") + 256 * raw.count(b"\n--") + 64 * raw.count(b"@")
    return cost <= INLINE_COST


def _reimport(tx: Tx, ctx: Processing, job: ImportJob) -> tuple[list[ImportResult], bool]:
    """:meth:`Processor.retry`'s transaction: forget the failure, import again."""
    tx.delete_raw(job.raw.source_key)
    return _import_all(tx, ctx, [job])


def _import_all(tx: Tx, ctx: Processing, jobs: Sequence[ImportJob]
                ) -> tuple[list[ImportResult], bool]:
    """Import ``jobs`` in order in the one open transaction (in the store's thread).

    Returns:
        The results, and whether any of them queued mail. Returned, not stored on the
        processor, so nothing crosses from the store thread to the Trio task but the
        result of ``store.run`` (and a rolled-back attempt leaves nothing behind).
    """
    queued = False
    if ctx.queue_mail is not None:
        queue_mail = ctx.queue_mail

        def noting(*args: Any, **kwargs: Any) -> list[int]:
            nonlocal queued
            ids = queue_mail(*args, **kwargs)
            queued = queued or bool(ids)
            return ids

        ctx = replace(ctx, queue_mail=noting)
    return [import_message(tx, ctx, job) for job in jobs], queued


def _observe_imports(seconds: float, count: int) -> None:
    """One ``postroom_import_duration_seconds`` sample per message: a batch's time, shared."""
    for _ in range(count):
        IMPORT_SECONDS.observe(seconds / count)
