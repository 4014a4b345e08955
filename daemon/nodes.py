"""Who this daemon is among several, and the guard that keeps SQLite to one of them.

Several daemons may share one PostgreSQL store (``docs/scaling.md``); each is a *node*
with an id, by default ``hostname:pid`` (``[daemon] node_id`` overrides it). The id is in
every log line of the daemon (``node``), in ``/status``, and in the lease rows that say
which node serves which account (:mod:`daemon.leases`).

SQLite is single-node by design: one writer, a file on one machine. A second daemon on
the same file would sync every account twice, so :func:`hold_single_node_lock` takes an
exclusive ``flock`` on ``<database>.lock`` for the daemon's lifetime and refuses to start
a second one, naming the holder's pid. The lock is per open file, not per process, so it
also guards two daemons in one process (tests). The CLI's one-shot commands (``deliver``,
``backup``, ``objects``) do not take it: they are meant to run beside the daemon.
The kernel drops the lock when the process dies, SIGKILL included, so no stale lock is
ever left to clean up. On a system without ``fcntl`` (Windows) there is no guard.
"""

from __future__ import annotations

__all__ = ["SingleNodeError", "default_node_id", "hold_single_node_lock", "node_id",
           "parse_bind"]

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from daemon.errors import StoreError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]


class SingleNodeError(StoreError):
    """Another daemon already serves this SQLite file."""


def default_node_id() -> str:
    """``hostname:pid``: unique among the live nodes of one store."""
    return f"{socket.gethostname()}:{os.getpid()}"


def node_id(config: Any) -> str:
    """This daemon's node id: ``[daemon] node_id``, else :func:`default_node_id`."""
    return getattr(config.daemon, "node_id", None) or default_node_id()


def parse_bind(value: str) -> str:
    """Check a ``HOST:PORT`` given on the command line (``postroom run --bind``).

    Raises:
        ValueError: not ``host:port`` with a port in 0..65535.
    """
    host, _, port = value.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f'"{value}" must be "host:port", e.g. "127.0.0.1:8025" '
                         'or "[::1]:8025"')
    return value


def lock_path(database: Path) -> Path:
    """The lock file beside a SQLite database: ``<database>.lock``."""
    return database.with_name(database.name + ".lock")


@contextmanager
def hold_single_node_lock(database: Path | None) -> Iterator[None]:
    """Hold the exclusive lock beside ``database`` for the block (None: nothing to hold).

    Raises:
        SingleNodeError: another daemon holds it; the message names its pid and says why.
    """
    if database is None or fcntl is None:
        yield
        return
    path = lock_path(database)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise SingleNodeError(
                f"another postroom daemon (pid {holder}) is already running on {database}: "
                "a SQLite store serves one daemon only (it holds the lock "
                f"{path}); run several nodes on PostgreSQL instead") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor drops the lock
