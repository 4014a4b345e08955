"""Running the real daemon for a benchmark: in-process, or as a child process.

In-process (ingest, latency): :func:`daemon.app.open_daemon` starts ``run_daemon``
in the caller's Trio run and stops it on the way out; :func:`wait_for` waits on an
account's status events (no polling).

As a child (scale, webhook), so that /proc figures are the daemon's own::

    python -m benchmarks._daemon CONFIG --log FILE

runs the daemon (config secrets from the environment, JSON logs to FILE) and prints one
JSON line per milestone to stdout:

    {"event": "started", "seconds": ..., "http": [...]}     run_daemon is up
    {"event": "all_idle", "seconds": ...}                   every account reached ``idle``
    {"event": "stopped", "states": {...}}                   after SIGTERM/SIGINT

``seconds`` count from just before ``run_daemon`` was called (after imports and config
loading, which :func:`spawn_daemon` times separately from process start).
"""

from __future__ import annotations

__all__ = ["DaemonProcess", "all_idle", "configure_logging_to", "spawn_daemon", "wait_for"]

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import IO, Any

import trio

from daemon.actors.status import AccountState, AccountStatus
from daemon.app import Daemon, run_daemon
from daemon.log import configure_logging

_log_files: list[IO[str]] = []


def configure_logging_to(path: Path, level: str = "info") -> None:
    """Send the daemon's JSON log lines to ``path`` (as in production, but not stdout)."""
    stream = path.open("a", encoding="utf-8")
    _log_files.append(stream)  # open for the life of the process
    configure_logging("json", level, stream=stream)


async def wait_for(status: AccountStatus, predicate: Callable[[AccountStatus], bool]) -> None:
    """Return once ``predicate(status)`` holds, re-checking on every status change."""
    while not predicate(status):
        await status.changed.wait()


async def all_idle(daemon: Daemon) -> None:
    """Return once every account has reached ``idle`` (each checked in turn)."""
    for handle in daemon.handles.values():
        await wait_for(handle.status, lambda s: s.state is AccountState.IDLE)


# -- the child process ------------------------------------------------------------------

def _emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _graph_tokens() -> Any:
    """A fixed Graph token from ``POSTROOM_BENCH_GRAPH_TOKEN`` (the emulator's), or None."""
    token = os.environ.get("POSTROOM_BENCH_GRAPH_TOKEN")
    if token is None:
        return None
    from daemon.graph.client import static_token

    return lambda account, app: static_token(token)


async def _serve(config: Any) -> None:
    begin = time.monotonic()
    async with trio.open_nursery() as nursery:
        daemon: Daemon = await nursery.start(partial(run_daemon, config,
                                                     graph_tokens=_graph_tokens()))
        _emit(event="started", seconds=time.monotonic() - begin, http=daemon.http_urls)
        await all_idle(daemon)
        _emit(event="all_idle", seconds=time.monotonic() - begin)
    states: dict[str, int] = {}
    for handle in daemon.handles.values():
        states[handle.status.state.value] = states.get(handle.status.state.value, 0) + 1
    _emit(event="stopped", states=states)


def main(argv: Sequence[str] | None = None) -> int:
    from daemon.config import load_config

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("config", type=Path)
    parser.add_argument("--log", type=Path, required=True, help="daemon log file")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    configure_logging_to(args.log, config.daemon.log_level)
    trio.run(_serve, config)
    return 0


class DaemonProcess:
    """A daemon child process (``python -m benchmarks._daemon``) and its milestones.

    Attributes:
        process: the child; its pid is the daemon's (no shell in between).
        spawned_at: ``time.monotonic()`` just before the child was started.
    """

    def __init__(self, config: Path, log: Path, env: dict[str, str]) -> None:
        self.spawned_at = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks._daemon", str(config), "--log", str(log)],
            stdout=subprocess.PIPE, text=True, env={**os.environ, **env},
            cwd=Path(__file__).resolve().parents[1])
        self.log = log

    @property
    def pid(self) -> int:
        return self.process.pid

    def milestone(self, event: str, timeout: float) -> dict[str, Any]:
        """Block until the child prints milestone ``event``; return it with ``at``.

        ``at`` is ``time.monotonic()`` when the line was read.

        Raises:
            RuntimeError: the child exited, or ``timeout`` passed (the log tail says why).
        """
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise RuntimeError(f"daemon exited ({self.process.wait()}):\n{self.log_tail()}")
            fields = json.loads(line)
            if fields.get("event") == event:
                fields["at"] = time.monotonic()
                return fields
        raise RuntimeError(f"no {event!r} from the daemon in {timeout} s:\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> dict[str, Any] | None:
        """SIGTERM, wait for a graceful exit (SIGKILL after ``timeout``); the last milestone."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            out, _ = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            return None
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        return lines[-1] if lines else None

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


def spawn_daemon(config: Path, log: Path, env: dict[str, str]) -> DaemonProcess:
    """Start ``python -m benchmarks._daemon`` for ``config``; see :class:`DaemonProcess`."""
    return DaemonProcess(config, log, env)


if __name__ == "__main__":
    raise SystemExit(main())
