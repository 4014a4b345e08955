"""One-for-one supervision: restart a crashed actor alone, with backoff, or park it.

A Trio nursery is one-for-all: one failing child cancels its siblings. Mailboxes must not
take each other down, so each actor runs inside its own restart loop
(:func:`supervise`), and all those loops share one nursery.

The loop decides by exception class only (see :mod:`daemon.errors`):

* ``AuthError``: credentials were refused. After ``policy.park_after_auth_failures``
  consecutive refusals the actor is parked in ``auth_error`` and not restarted until the
  daemon restarts or someone wakes it ("Sync emails" / a changed password).
* ``TransientError``, and ``OSError`` EMFILE/ENFILE (out of file descriptors, see
  :func:`daemon.errors.is_transient`): restart after a backoff as below, logged as
  ``actor.backoff`` without a traceback; not a crash.
  ``ReauthenticationRequired`` and ``OAuthAppFailing`` (an OAuth grant is dead, the app is
  refused) park at once: retrying cannot help before a human signs in again.
* ``PermanentError`` escaping an actor, and any other ``Exception``: a crash. Restart after
  an exponential delay with full jitter (``random() * min(cap, base * 2**attempt)``, the
  AWS Architecture Blog's "full jitter"); the attempt counter resets once the actor has run
  for ``policy.reset_after`` seconds.
* A clean return is not restarted. ``Cancelled`` (shutdown) passes straight through.
"""

from __future__ import annotations

__all__ = ["RestartPolicy", "backoff_delay", "supervise"]

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
import trio

from daemon.actors.status import AccountHandle, AccountState, AccountStatus
from daemon.errors import (
    AuthError,
    OAuthAppFailing,
    PostroomError,
    ReauthenticationRequired,
    is_transient,
)

SECONDS = 1.0
MINUTES = 60 * SECONDS

log = structlog.get_logger("postroom.supervisor")


@dataclass(frozen=True)
class RestartPolicy:
    """How :func:`supervise` restarts one actor.

    Attributes:
        base: the first delay's upper bound.
        cap: no delay is longer than this (the account's ``backoff_cap_seconds``).
        reset_after: running this long without a crash resets the attempt counter.
        park_after_auth_failures: consecutive AuthErrors before parking in ``auth_error``.
    """

    base: float = 1 * SECONDS
    cap: float = 5 * MINUTES
    reset_after: float = 5 * MINUTES
    park_after_auth_failures: int = 3


def backoff_delay(attempt: int, policy: RestartPolicy, rand: Callable[[], float] = random.random,
                  ) -> float:
    """The delay before restart number ``attempt`` (0-based), with full jitter.

    Args:
        attempt: how many restarts in a row have already happened.
        policy: base and cap.
        rand: a source of floats in [0, 1); tests pass a fixed one.

    Returns:
        A float in ``[0, min(cap, base * 2**attempt))``.
    """
    ceiling: float = min(policy.cap, policy.base * (2 ** min(attempt, 62)))
    return rand() * ceiling


ActorRun = Callable[..., Awaitable[None]]


async def supervise(run: ActorRun, handle: AccountHandle, policy: RestartPolicy, *,
                    rand: Callable[[], float] = random.random,
                    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    """Run ``run(task_status=...)`` forever, restarting it as the policy says.

    ``task_status.started()`` is called as soon as the first attempt has started (or has
    failed: a dead server must not stop the daemon from starting). While waiting out a
    backoff, ``handle.wakeups`` cuts the wait short, so "Sync now" also means "retry now".

    Args:
        run: the actor's entry point; it accepts ``task_status``.
        handle: the actor's status (state, last error) and wake-up channel.
        policy: backoff and parking parameters.
        rand: jitter source (tests make it deterministic).

    Returns:
        When ``run`` returns normally. Never raises ``Exception``; cancellation propagates.
    """
    status = handle.status
    attempt = 0
    auth_failures = 0
    started = False

    def report_started() -> None:
        nonlocal started
        if not started:
            started = True
            task_status.started()

    while True:
        began = trio.current_time()
        error = await _run_once(run, report_started)
        if error is None:
            return
        if isinstance(error, AuthError):
            auth_failures += 1
            _report(status, "actor.auth_failed", error, attempt, auth_failures=auth_failures)
            if auth_failures >= policy.park_after_auth_failures or isinstance(
                    error, ReauthenticationRequired | OAuthAppFailing):
                status.set_state(AccountState.AUTH_ERROR, _describe(error))
                log.error("account.parked", account=status.account,
                          state=AccountState.AUTH_ERROR.value, reason=_describe(error))
                report_started()
                await _wait_for_wakeup(handle)
                log.info("account.unparked", account=status.account)
                auth_failures = attempt = 0
                continue
        else:
            auth_failures = 0
            _report(status, "actor.backoff" if is_transient(error) else "actor.crashed",
                    error, attempt)
        report_started()
        if trio.current_time() - began >= policy.reset_after:
            attempt = 0
        delay = backoff_delay(attempt, policy, rand)
        status.reconnects += 1
        status.extra["retry_in_seconds"] = round(delay, 3)
        status.set_state(AccountState.BACKOFF)
        with trio.move_on_after(delay):
            await _wait_for_wakeup(handle)
        status.extra.pop("retry_in_seconds", None)
        attempt += 1


async def _run_once(run: ActorRun, report_started: Callable[[], None]) -> Exception | None:
    """Run one attempt; return the exception that ended it, or None for a clean exit."""
    failure: Exception | None = None
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(run)
            report_started()
    except* Exception as group:
        failure = _first(group)
    return failure


async def _wait_for_wakeup(handle: AccountHandle) -> None:
    await handle.wakeups.receive()


def _first(group: BaseExceptionGroup) -> Exception:
    """The first leaf exception of a (possibly nested) group."""
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    assert isinstance(exc, Exception)
    return exc


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _report(status: AccountStatus, event: str, error: BaseException, attempt: int,
            **fields: object) -> None:
    status.last_error = _describe(error)
    log.warning(event, account=status.account, attempt=attempt, error=_describe(error),
                exc_info=not isinstance(error, AuthError) and _is_bug(error), **fields)


def _is_bug(error: BaseException) -> bool:
    """Errors we did not raise on purpose get a traceback in the log."""
    return not isinstance(error, PostroomError) and not is_transient(error)
