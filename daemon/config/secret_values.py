"""Secrets: where they come from, and a value type that will not print them.

A secret never lives in the TOML file. Each secret setting ``X`` is given as one of two
indirections, and :func:`resolve_secret` follows it once, at load time:

``X_env = "NAME"``
    the value of environment variable ``NAME`` (what systemd ``Environment=`` and
    container runtimes give you);
``X_file = "path"``
    the content of a file, one trailing newline stripped (what systemd ``LoadCredential=``
    and Docker/Kubernetes secrets give you). A relative path is relative to the TOML file.
    A path starting ``%d/`` is in systemd's credentials directory, as in a unit file:
    ``password_file = "%d/support"`` reads ``$CREDENTIALS_DIRECTORY/support``, which
    ``LoadCredential=support:/etc/postroom/credentials/support`` fills.

The trade-off: a literal ``password = "..."`` would be simpler, but config files get
committed, pasted into tickets and printed by ``check-config``; an environment variable or
a 0600 file does not. So a literal is an error, not a convenience.

The result is a :class:`Secret`. Its ``repr`` and ``str`` are ``Secret('****')``, so a
secret inside a config object, an f-string or a log line stays masked; only
:meth:`Secret.reveal` returns the value, and only code that hands it to a server calls it.
Errors name the setting, the variable or the file, never the value.
"""

from __future__ import annotations

__all__ = ["ENV_SUFFIX", "FILE_SUFFIX", "Secret", "SecretError", "resolve_secret"]

import hmac
import os
from collections.abc import Mapping
from pathlib import Path

#: ``password_env``: the name of an environment variable holding the secret.
ENV_SUFFIX = "_env"
#: ``password_file``: the path of a file holding the secret.
FILE_SUFFIX = "_file"

_MASK = "Secret('****')"


class Secret:
    """A string that does not show itself.

    Equality compares the values in constant time; the hash is that of the value, so
    secrets can sit in frozen config objects. Pickling is refused, so a secret cannot leak
    into a cache or a crash dump by accident.

    Args:
        value: the secret; must not be empty.

    Raises:
        ValueError: ``value`` is empty.
        TypeError: ``value`` is not a ``str``.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret value must be str, not {type(value).__name__}")
        if not value:
            raise ValueError("Secret value must not be empty")
        self._value = value

    def reveal(self) -> str:
        """The secret itself. Call this only where it is handed to a server."""
        return self._value

    def __repr__(self) -> str:
        return _MASK

    __str__ = __repr__

    def __format__(self, format_spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> str:
        raise TypeError("a Secret cannot be pickled")


class SecretError(ValueError):
    """A secret could not be resolved.

    Attributes:
        source: ``"env"`` or ``"file"``: which indirection failed, so the caller can report
            the problem at ``X_env`` or ``X_file``.
        reason: what went wrong, naming the variable or file but never a value.
    """

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(reason)
        self.source = source
        self.reason = reason


def resolve_secret(env: str | None, file: str | None, *, environ: Mapping[str, str],
                   base_dir: Path) -> Secret | None:
    """Follow a secret's ``_env`` or ``_file`` indirection.

    Args:
        env: the name of the environment variable, or None.
        file: the path of the file (relative paths are relative to ``base_dir``), or None.
        environ: the environment to read (``os.environ`` in production, a dict in tests).
        base_dir: the folder of the TOML file.

    Returns:
        The secret, or None when neither ``env`` nor ``file`` is given.

    Raises:
        SecretError: both are given; the variable is unset or empty; the file is missing,
            unreadable or empty. ``source`` says which indirection is at fault.
    """
    if env is not None and file is not None:
        raise SecretError("file", "give the _env or the _file setting, not both")
    if env is not None:
        return _from_environ(env, environ)
    if file is not None:
        return _from_file(base_dir / _in_credentials_directory(file, environ))
    return None


#: ``X_file = "%d/name"``: ``name`` in ``$CREDENTIALS_DIRECTORY`` (systemd's specifier).
CREDENTIALS_PREFIX = "%d/"


def _in_credentials_directory(file: str, environ: Mapping[str, str]) -> str:
    """``file`` with a leading ``%d/`` replaced by ``$CREDENTIALS_DIRECTORY``."""
    if not file.startswith(CREDENTIALS_PREFIX):
        return file
    directory = environ.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise SecretError("file", f'"{file}": $CREDENTIALS_DIRECTORY is not set (systemd '
                          "sets it for a unit with LoadCredential=)")
    return str(Path(directory) / file.removeprefix(CREDENTIALS_PREFIX))


def _from_environ(name: str, environ: Mapping[str, str]) -> Secret:
    value = environ.get(name)
    if value is None:
        raise SecretError("env", f'environment variable "{name}" is not set')
    if not value:
        raise SecretError("env", f'environment variable "{name}" is empty')
    return Secret(value)


def _from_file(path: Path) -> Secret:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecretError("file", f'file "{path}" does not exist') from None
    except (OSError, UnicodeDecodeError) as exc:
        why = (os.strerror(exc.errno) if isinstance(exc, OSError) and exc.errno
               else "not UTF-8 text")
        raise SecretError("file", f'file "{path}" cannot be read: {why}') from None
    value = text.removesuffix("\n").removesuffix("\r")
    if not value:
        raise SecretError("file", f'file "{path}" is empty')
    return Secret(value)
