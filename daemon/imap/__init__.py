"""IMAP plumbing for the mailbox actor (:mod:`daemon.actors.imap`).

Layout, one concept per module:

* :mod:`daemon.imap.errors`: :func:`map_errors`, the one place library errors are translated;
* :mod:`daemon.imap.connection`: :class:`ImapSession` (connect, TLS, calls in worker threads
  under the shared :func:`imap_limiter`), :func:`open_session`, the :class:`LoginMethod`
  protocol it calls, and :func:`take_untagged`, the one reach into imaplib's state;
* :mod:`daemon.imap.login`: :func:`password_login`, a :class:`LoginMethod`;
* :mod:`daemon.imap.idle`: :func:`idle_until_change`, IDLE without holding a thread;
* :mod:`daemon.imap.folder`: :class:`FolderSync`, checkpointed sync of one folder, which
  reports :class:`SyncProgress` to a callback;
* :mod:`daemon.imap.sent`: :class:`ImapSentFolder`, the outbox's Sent folder over IMAP
  (:class:`daemon.outbox.sentcopy.SentFolder`).

The package is plumbing below the actors: it never imports :mod:`daemon.actors`; the IMAP
actor (:mod:`daemon.actors.imap`) drives it.
"""

from daemon.imap.connection import (
    DEFAULT_IMAP_THREADS,
    ImapSession,
    LoginMethod,
    SelectInfo,
    imap_limiter,
    open_session,
    take_untagged,
)
from daemon.imap.errors import map_errors
from daemon.imap.folder import FolderState, FolderSync, ResyncLimitReached, SyncProgress
from daemon.imap.idle import IdleEnd, idle_until_change
from daemon.imap.login import password_login

__all__ = [
    "DEFAULT_IMAP_THREADS",
    "FolderState",
    "FolderSync",
    "IdleEnd",
    "ImapSession",
    "LoginMethod",
    "ResyncLimitReached",
    "SelectInfo",
    "SyncProgress",
    "idle_until_change",
    "imap_limiter",
    "map_errors",
    "open_session",
    "password_login",
    "take_untagged",
]
