"""IMAP plumbing for the mailbox actor (:mod:`daemon.actors.imap`).

Layout, one concept per module:

* :mod:`daemon.imap.errors`: :func:`map_errors`, the one place library errors are translated;
* :mod:`daemon.imap.connection`: :class:`ImapSession` (connect, TLS, calls in worker threads
  under the shared :func:`imap_limiter`), :func:`open_session`;
* :mod:`daemon.imap.login`: the pluggable :class:`LoginMethod`, :func:`password_login`;
* :mod:`daemon.imap.idle`: :func:`idle_until_change`, IDLE without holding a thread;
* :mod:`daemon.imap.folder`: :class:`FolderSync`, checkpointed sync of one folder.
"""

from daemon.imap.connection import (
    DEFAULT_IMAP_THREADS,
    ImapSession,
    SelectInfo,
    imap_limiter,
    open_session,
    set_imap_thread_limit,
)
from daemon.imap.errors import map_errors
from daemon.imap.folder import FolderState, FolderSync, ResyncLimitReached
from daemon.imap.idle import IdleEnd, idle_until_change
from daemon.imap.login import LoginMethod, password_login

__all__ = [
    "DEFAULT_IMAP_THREADS",
    "FolderState",
    "FolderSync",
    "IdleEnd",
    "ImapSession",
    "LoginMethod",
    "ResyncLimitReached",
    "SelectInfo",
    "idle_until_change",
    "imap_limiter",
    "map_errors",
    "open_session",
    "password_login",
    "set_imap_thread_limit",
]
