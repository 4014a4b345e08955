"""The Graph emulator (tests/fakes/graph.py) in a thread of its own, for benchmarks.

The daemon under test runs in a child process and the load generator in this one's main
thread; the emulator needs an event loop of its own beside them, so it gets a Trio run in
a background thread. :meth:`EmulatorThread.call` runs a function inside that loop (the
emulator is not thread-safe) and returns its result.
"""

from __future__ import annotations

__all__ = ["EmulatorThread"]

import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import trio

from tests.fakes.graph import GraphEmulator, serve_emulator

T = TypeVar("T")


class EmulatorThread:
    """``with EmulatorThread() as em: em.base_url, em.call(lambda e: ...)``."""

    def __init__(self, emulator: GraphEmulator | None = None) -> None:
        self.emulator = emulator or GraphEmulator()
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=trio.run, args=(self._main,), daemon=True)

    async def _main(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        async with serve_emulator(self.emulator):
            self._ready.set()
            await self._stop.wait()

    def __enter__(self) -> EmulatorThread:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the Graph emulator did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None and self._stop is not None
        self._token.run_sync_soon(self._stop.set)
        self._thread.join(10)

    @property
    def base_url(self) -> str:
        return self.emulator.base_url

    def call(self, fn: Callable[[GraphEmulator], T]) -> T:
        """Run ``fn(emulator)`` in the emulator's loop; return (or raise) its result."""
        assert self._token is not None
        results: queue.Queue[tuple[bool, Any]] = queue.Queue()

        def run() -> None:
            try:
                results.put((True, fn(self.emulator)))
            except BaseException as exc:  # handed back to the caller
                results.put((False, exc))

        self._token.run_sync_soon(run)
        ok, value = results.get(timeout=30)
        if not ok:
            raise value
        return value
