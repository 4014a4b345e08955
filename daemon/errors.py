"""Every error postroom raises on purpose, and how the supervisor reads them.

The supervisor and the actors decide by exception class only::

    PostroomError
    ├── ConfigError            a configuration file is wrong; carries every problem found
    ├── AuthError              credentials refused or consent revoked: the actor parks in
    │   │                      ``auth_error`` instead of retrying
    │   ├── ReauthenticationRequired  an OAuth grant is gone (revoked, expired, never
    │   │                      given): parks at once; a human must sign in again
    │   └── OAuthAppFailing    the OAuth app itself is refused (secret expired or wrong,
    │                          unknown client id): every account on it parks at once
    ├── TransientError         the world failed for now: retry with backoff
    │   ├── ConnectError       could not reach the server
    │   ├── ProtocolError      the server said something we did not expect
    │   └── StoreBusyError     the store is locked, full or unreachable
    ├── PermanentError         this input will never succeed: record it and move on
    │   ├── MessageTooLarge    above the account's size limit
    │   └── ProcessingError    the pipeline could not turn a message into objects
    └── StoreError             misuse of the store or a broken invariant
        └── UniqueViolation    a unique key was already taken

One library error counts as transient without being translated: ``OSError`` with errno
``EMFILE``/``ENFILE`` (out of file descriptors), which any actor can hit when the process
is flooded with connections (:func:`is_transient`).

Misuse of an API stays ``TypeError`` / ``ValueError``. Errors carry the account and the
source key where one applies, never a secret: messages are built from names and ids only.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigError",
    "ConfigProblem",
    "ConnectError",
    "MessageTooLarge",
    "PermanentError",
    "PostroomError",
    "ProcessingError",
    "OAuthAppFailing",
    "ProtocolError",
    "ReauthenticationRequired",
    "StoreBusyError",
    "StoreError",
    "TransientError",
    "UniqueViolation",
    "is_transient",
    "store_is_full",
    "translated",
]

import errno
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class PostroomError(Exception):
    """Base class. ``account`` and ``source_key`` say where, when known."""

    def __init__(self, message: str, *, account: str | None = None,
                 source_key: str | None = None) -> None:
        super().__init__(message)
        self.account = account
        self.source_key = source_key


@dataclass(frozen=True)
class ConfigProblem:
    """One problem in one file: ``file: path: reason``."""

    file: str
    path: str
    reason: str

    def __str__(self) -> str:
        if not self.path:
            return f"{self.file}: {self.reason}"
        return f"{self.file}: {self.path}: {self.reason}"


class ConfigError(PostroomError):
    """A configuration file is invalid. ``problems`` lists all of them, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class AuthError(PostroomError):
    """The server refused our credentials. Retrying will not help until a human acts."""


class ReauthenticationRequired(AuthError):
    """An OAuth account has no usable grant: a human must sign in (``/oauth/start``)."""


class OAuthAppFailing(AuthError):
    """The OAuth app's own credentials are refused; no account on it can sign in."""


class TransientError(PostroomError):
    """A failure that may go away: retry with backoff."""


class ConnectError(TransientError):
    """The server could not be reached, or the connection dropped."""


class ProtocolError(TransientError):
    """The server answered in a way we did not expect."""


class StoreBusyError(TransientError):
    """The store could not commit now (locked, disk full, connection lost)."""


class LeaseLost(TransientError):
    """This node no longer holds the account's lease: its intake writes are refused.

    Another node serves the account now (or will once the lease expired); the work is
    left to it, and the message is fetched again there.
    """


class PermanentError(PostroomError):
    """This input will never succeed as it is; record it and carry on with the next."""


class MessageTooLarge(PermanentError):
    """The message is larger than the account allows; it is not downloaded."""


class ProcessingError(PermanentError):
    """The pipeline could not turn a message into CRM objects."""


class StoreError(PostroomError):
    """The store was misused or an invariant broke."""


class UniqueViolation(StoreError):
    """A unique key (source key, unique property) already exists."""


#: errno values meaning "the process (or system) is out of file descriptors".
_OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE})


def is_transient(error: BaseException) -> bool:
    """True for a failure that should be retried with backoff, not treated as a crash.

    ``TransientError``, and ``OSError`` EMFILE/ENFILE: descriptors come back when the
    connections holding them close, so the actor backs off instead of crashing.
    """
    if isinstance(error, TransientError):
        return True
    return isinstance(error, OSError) and error.errno in _OUT_OF_DESCRIPTORS


#: What a full disk looks like below a StoreBusyError: SQLite's primary result code
#: SQLITE_FULL, PostgreSQL's SQLSTATE 53100 (disk_full).
_SQLITE_FULL = 13
_PG_DISK_FULL = "53100"


def store_is_full(exc: BaseException) -> bool:
    """True if ``exc`` is a :class:`StoreBusyError` caused by a full disk (or a size cap).

    Unlike a lock, a full disk does not go away by waiting, but a smaller transaction may
    still fit: the processor then imports a failed batch one message per transaction.
    Read from the translated error's cause (the store keeps it, ``raise ... from exc``),
    so the store adapters need no new error class.
    """
    if not isinstance(exc, StoreBusyError):
        return False
    cause = exc.__cause__
    code = getattr(cause, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF == _SQLITE_FULL
    return getattr(cause, "sqlstate", None) == _PG_DISK_FULL


@contextmanager
def translated(translate: Callable[[Exception], PostroomError | None], *,
               chain: bool = True) -> Iterator[None]:
    """Re-raise library exceptions from the block as postroom errors: the one boundary.

    Each adapter (IMAP, SMTP, the store) passes its own ``translate``, which returns the
    most specific postroom error for a library exception, or None to let it pass.

    Args:
        translate: maps one exception; None means "not ours to map".
        chain: ``raise ... from exc`` (default). False drops the cause and its traceback:
            for a login step, whose frames hold the password as a local variable.

    Raises:
        What ``translate`` returned; postroom errors and unmapped exceptions unchanged.
    """
    try:
        yield
    except PostroomError:
        raise
    except Exception as exc:
        mapped = translate(exc)
        if mapped is None:
            raise
        if chain:
            raise mapped from exc
        exc.__traceback__ = None  # drop the frames (and their locals) of the cause
        raise mapped from None
