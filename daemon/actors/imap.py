"""The IMAP mailbox actor: one per account whose ``auth`` names an ``imap_connections`` entry.

State owned: one :class:`~daemon.imap.connection.ImapSession` (a single connection, used
for sync and for IDLE in turn), the folder's sync position (:class:`FolderSync`, persisted
as checkpoints in the store) and the account's :class:`AccountStatus`.

Receives: wake-ups on ``handle.wakeups`` (a capacity-1 coalescing channel; any item means
"sync now"), and, from the server, ``EXISTS`` while idling.

Sends: new messages as :class:`~daemon.messages.RawMessage` in UID order, a fetch window
at a time to ``submit_many`` (one by one to ``submit`` without it), waiting for the
committed :class:`~daemon.messages.Outcome` of each; then sets ``\\Seen`` or moves the
message to the failure folder (see :mod:`daemon.imap.folder`). The folder's progress
reports (:class:`~daemon.imap.folder.SyncProgress`) become the account's status.

States (:class:`AccountState`)::

    connecting  opening the connection, TLS, login
    syncing     a round: SELECT, then importing everything above the checkpoint
    idle        caught up; in IDLE (or between polls when IDLE is off or not offered)
    disabled    parked: UIDVALIDITY changed too often in a row; a wake-up retries
    (backoff and auth_error are set by the supervisor, daemon/supervisor.py)

Loop: connect, then rounds: SELECT + sync, then wait (IDLE until EXISTS, a wake-up or
``idle_renew_seconds``; or ``poll_interval_seconds`` / a wake-up when polling), and again.
A round per IDLE renewal (default 10 minutes) costs a SELECT and a SEARCH, and catches
what a server failed to announce (a folder recreated under a live session, for one).

Errors: this actor does not retry. ``ConnectError``/``ProtocolError`` (connection lost,
server restarted, timeouts) and transient store errors propagate to the supervisor, which
restarts the actor with exponential backoff and full jitter; ``AuthError`` (login refused,
with the server's reason) propagates and the supervisor parks the account in
``auth_error`` after a few in a row. Other accounts are unaffected: each has its own
actor, connection and restart loop. A message that fails processing never raises here:
it is moved to the failure folder and the next message follows.

Cancellation: at any checkpoint. A blocking IMAP call in flight is abandoned and its socket
shut down; a message being committed finishes its transaction in the store's thread and,
if committed, is not fetched again (the next round sets the flags it missed, see
``flagged_uid``). The connection is closed (LOGOUT when healthy, bounded to 2 s) on the
way out.
"""

from __future__ import annotations

__all__ = ["run_imap_account"]

from collections.abc import Callable

import structlog
import trio

from daemon.actors.status import AccountHandle, AccountState, AccountStatus
from daemon.config import Account, ImapConnection
from daemon.errors import ConfigError, ConfigProblem
from daemon.imap.connection import ImapSession, LoginMethod, open_session
from daemon.imap.folder import FolderSync, ResyncLimitReached, SyncProgress
from daemon.imap.idle import idle_until_change
from daemon.imap.login import password_login
from daemon.messages import Submit, SubmitMany
from daemon.store import AsyncStore

log = structlog.get_logger("postroom.imap")


async def run_imap_account(account: Account, connection: ImapConnection, *, submit: Submit,
                           store: AsyncStore, handle: AccountHandle,
                           login: LoginMethod | None = None,
                           submit_many: SubmitMany | None = None,
                           task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
                           ) -> None:
    """Keep ``account``'s folder synced forever; see the module docstring.

    Args:
        account: a ``daemon.config.Account`` (id, login, password, folder,
            failure_folder, max_message_bytes, import_since, idle, idle_renew_seconds,
            poll_interval_seconds).
        connection: its ``daemon.config.ImapConnection`` (host, port, TLS, CA, timeouts).
        submit: hands a message to the processor; returns once it is committed.
        submit_many: the same for a fetch window in one transaction (group commit);
            without it messages go one by one.
        store: the :class:`~daemon.store.AsyncStore` holding the checkpoints.
        handle: the account's status and wake-up channel.
        login: how to authenticate; default IMAP LOGIN with ``account.login`` (the
            username, or the email when unset) and ``account.password``.
        task_status: ``started()`` once logged in.

    Returns:
        Never, except by cancellation.

    Raises:
        AuthError: the server refused the login.
        ConnectError, ProtocolError: the connection failed or the server misbehaved.
        ConfigError: ``imap_tls = "none"`` towards a non-loopback host, or no password.
        StoreBusyError: the store could not commit.
    """
    structlog.contextvars.bind_contextvars(account=account.id, folder=account.folder)
    login = login or _password_login(account)
    started = False

    def report_started() -> None:
        nonlocal started
        if not started:
            started = True
            task_status.started()

    while True:
        handle.status.set_state(AccountState.CONNECTING)
        folder, reason = await _run_session(account, connection, login, submit=submit,
                                            submit_many=submit_many, store=store,
                                            handle=handle, ready=report_started)
        report_started()
        await _park(folder, handle, reason)


async def _run_session(account: Account, connection: ImapConnection, login: LoginMethod, *,
                       submit: Submit, submit_many: SubmitMany | None, store: AsyncStore,
                       handle: AccountHandle, ready: Callable[[], None],
                       ) -> tuple[FolderSync, str]:
    """Connect and serve until an error; return only when the folder must park."""
    async with open_session(connection, login, account=account.id) as session:
        ready()
        folder = FolderSync(session, account, store=store, submit=submit,
                            submit_many=submit_many, on_progress=_show_progress(handle.status))
        try:
            await _serve(session, folder, account, handle)
        except ResyncLimitReached as exc:
            return folder, str(exc)
    raise AssertionError("unreachable: _serve returns only by raising")


async def _serve(session: ImapSession, folder: FolderSync, account: Account,
                 handle: AccountHandle) -> None:
    """Sync round, wait for a change (or the renewal time), sync round, ... forever."""
    status = handle.status
    use_idle = bool(account.idle) and session.has("IDLE")
    status.extra["idle"] = use_idle
    while True:
        status.set_state(AccountState.SYNCING)
        handled = await folder.sync()
        status.synced()
        log.info("imap.sync.done", handled=handled, last_uid=folder.state.last_uid)
        if use_idle:
            await idle_until_change(session, renew_after=account.idle_renew_seconds,
                                    wakeups=handle.wakeups, on_idle=_idle_state(status))
        else:
            status.set_state(AccountState.IDLE)
            with trio.move_on_after(account.poll_interval_seconds):
                await handle.wakeups.receive()


def _password_login(account: Account) -> LoginMethod:
    if account.password is None:
        raise ConfigError([ConfigProblem(
            "config", f"accounts.{account.id}.password_env",
            "an IMAP account needs password_env or password_file")])
    return password_login(account.login, account.password)


def _show_progress(status: AccountStatus) -> Callable[[SyncProgress], None]:
    """Turn the folder's progress reports into ``status`` (counters, folder, last_uid)."""
    def show(progress: SyncProgress) -> None:
        status.extra.update(folder=progress.folder, uidvalidity=progress.uidvalidity,
                            last_uid=progress.last_uid)
        if progress.outcome is not None:
            status.count(progress.outcome)
    return show


def _idle_state(status: AccountStatus) -> Callable[[], None]:
    """Show ``idle`` once the server has accepted IDLE, so ``idle`` means "watching"."""
    def enter() -> None:
        if status.state is not AccountState.IDLE:
            status.set_state(AccountState.IDLE)
    return enter


async def _park(folder: FolderSync, handle: AccountHandle, reason: str) -> None:
    """Show ``disabled`` with the reason; wait for a human's wake-up, then retry."""
    handle.status.set_state(AccountState.DISABLED, reason)
    log.error("account.parked", state=AccountState.DISABLED.value, reason=reason)
    await handle.wakeups.receive()
    await folder.reset_resyncs()
    log.info("account.unparked")
