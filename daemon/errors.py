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
    "translated",
]

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
