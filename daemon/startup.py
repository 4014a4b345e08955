"""``postroom run``: start the daemon, and turn any fatal start-up error into one line.

A service manager's journal is read by machines: a port already in use used to end in a
70-line traceback that no log pipeline could parse. Here every error that stops the daemon
— a configuration that cannot be read or is invalid, a listener that cannot bind, a store
that cannot be opened — is one ``daemon.failed`` JSON line with ``reason`` (a short
constant: ``config``, ``port_in_use``, ``permission_denied``, ``store``, ``unexpected``) and
``error`` (the text), and the process exits 1. The traceback of an unexpected error is kept
(in the same line, as ``exception``): it is a bug to report.
"""

from __future__ import annotations

__all__ = ["EXIT_FAILED", "failure_reason", "run_or_report"]

import errno
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import structlog
import trio

from daemon.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from daemon.config import Config

EXIT_FAILED = 1

log = structlog.get_logger("postroom.daemon")


def run_or_report(config_path: Path, *,
                  adjust: Callable[[Config], Config] | None = None) -> int:
    """Load the configuration, run the daemon until it stops; 0, or 1 after ``daemon.failed``.

    ``adjust`` changes the loaded configuration first (``postroom run --bind``).
    """
    from daemon.app import run_daemon
    from daemon.config import load_config
    from daemon.log import configure_logging

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        configure_logging("auto", "info")
        log.error("daemon.failed", reason="config", error=str(exc), config=str(config_path))
        return EXIT_FAILED
    if adjust is not None:
        config = adjust(config)
    configure_logging(config.daemon.log_format, config.daemon.log_level)
    try:
        trio.run(run_daemon, config)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:
        cause = _first_leaf(exc)
        reason = failure_reason(cause)
        log.error("daemon.failed", reason=reason, error=f"{type(cause).__name__}: {cause}",
                  bind=config.http.bind if config.http.enabled else None,
                  exc_info=cause if reason == "unexpected" else None)
        return EXIT_FAILED
    return 0


def failure_reason(error: BaseException) -> str:
    """A constant for what stopped the daemon (see the module docstring)."""
    if isinstance(error, OSError) and error.errno == errno.EADDRINUSE:
        return "port_in_use"
    if isinstance(error, PermissionError) or (
            isinstance(error, OSError) and error.errno == errno.EACCES):
        return "permission_denied"
    if isinstance(error, ConfigError):
        return "config"
    if isinstance(error, StoreError):
        return "store"
    return "unexpected"


def _first_leaf(error: BaseException) -> BaseException:
    """The first non-group exception inside (nested) exception groups."""
    while isinstance(error, BaseExceptionGroup) and error.exceptions:
        error = error.exceptions[0]
    return error
