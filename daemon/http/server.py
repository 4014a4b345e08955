"""Serving the ASGI app: Hypercorn's HTTP/1.1 machinery behind a connection cap.

This is :func:`hypercorn.trio.serve` (``hypercorn/trio/run.py``) cut down to what the
daemon uses: plain HTTP on the ``[http] bind`` address (TLS is the reverse proxy's job),
one worker, in the caller's Trio run. It exists for two things Hypercorn has no hook for:

* **A connection cap.** Each connection is a file descriptor, and the mailbox actors need
  descriptors too: 1,100 trickling clients once exhausted them (EMFILE). At most
  ``max_connections`` are open; when one more arrives, the connection that has waited
  longest for an answer (the oldest accept or last response byte) is closed to make room.
  New clients therefore always get in, so ``/livez`` keeps answering under a flood, and
  slow or idle clients are the ones that go; the price is that under a flood a very slow
  legitimate request can be cut off too.
* **Shutdown in two steps**, as in Hypercorn: when ``shutdown_trigger`` returns, the
  listener closes and idle keep-alive connections are closed, then the connection handlers
  get ``graceful_timeout`` seconds to finish before they are cancelled. (The daemon drains
  in-flight requests *before* it fires the trigger; see :mod:`daemon.http.guard`.)

Hypercorn's per-connection class (``hypercorn.trio.tcp_server.TCPServer``) does the HTTP
work unchanged; it is given a :class:`_TrackedStream` instead of the socket stream.
"""

from __future__ import annotations

__all__ = ["ConnectionCap", "serve"]

from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import hypercorn.config
import trio
from hypercorn.trio.lifespan import Lifespan
from hypercorn.trio.tcp_server import TCPServer
from hypercorn.trio.worker_context import WorkerContext
from hypercorn.typing import ConnectionState
from hypercorn.utils import repr_socket_addr, wrap_app


class ConnectionCap:
    """The open connections, at most ``limit``; evicts the longest-waiting one.

    Attributes:
        limit: the cap (``[http] max_connections``).
        evicted: connections closed to make room, since start.
        peak: the most connections open at once.
    """

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, got {limit}")
        self.limit = limit
        self.evicted = 0
        self.peak = 0
        self._open: set[_TrackedStream] = set()

    @property
    def open(self) -> int:
        return len(self._open)

    async def admit(self, stream: trio.SocketStream) -> _TrackedStream:
        """Track ``stream``, closing the longest-waiting connection first if at the cap."""
        if len(self._open) >= self.limit:
            victim = min(self._open, key=lambda s: s.waiting_since)
            self.evicted += 1
            await victim.aclose()
        tracked = _TrackedStream(stream, self)
        self._open.add(tracked)
        self.peak = max(self.peak, len(self._open))
        return tracked

    def _closed(self, stream: _TrackedStream) -> None:
        self._open.discard(stream)


class _TrackedStream(trio.abc.HalfCloseableStream):
    """A socket stream that remembers when it last sent; closing it leaves the cap.

    Deliberately has no ``do_handshake``: Hypercorn takes that as "not TLS".
    """

    def __init__(self, inner: trio.SocketStream, cap: ConnectionCap) -> None:
        self.inner = inner
        self.socket = inner.socket
        self.waiting_since = trio.current_time()
        self._cap = cap

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await self.inner.send_all(data)
        self.waiting_since = trio.current_time()

    async def wait_send_all_might_not_block(self) -> None:
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        return await self.inner.receive_some(max_bytes)

    async def send_eof(self) -> None:
        await self.inner.send_eof()

    async def aclose(self) -> None:
        self._cap._closed(self)
        await self.inner.aclose()


class _CappedListener(trio.abc.Listener[_TrackedStream]):
    def __init__(self, inner: trio.SocketListener, cap: ConnectionCap) -> None:
        self.inner = inner
        self.cap = cap

    async def accept(self) -> _TrackedStream:
        return await self.cap.admit(await self.inner.accept())

    async def aclose(self) -> None:
        await self.inner.aclose()


async def serve(app: Any, config: hypercorn.config.Config, cap: ConnectionCap, *,
                shutdown_trigger: Callable[[], Awaitable[object]],
                task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
    """Serve ``app`` on ``config.bind`` until ``shutdown_trigger`` returns.

    ``task_status.started(urls)`` once listening (``["http://127.0.0.1:8025"]``). Returns
    when every connection has finished, or ``config.graceful_timeout`` seconds after the
    trigger, whichever is first. Raises ``OSError`` if an address cannot be bound.
    """
    asgi = wrap_app(app, config.wsgi_max_body_size, "asgi")
    lifespan_state: dict[str, Any] = {}
    lifespan = Lifespan(asgi, config, lifespan_state)
    context = WorkerContext(None)
    async with trio.open_nursery() as lifespan_nursery:
        await lifespan_nursery.start(lifespan.handle_lifespan)
        await lifespan.wait_for_startup()
        async with trio.open_nursery() as handlers:
            sockets = config.create_sockets().insecure_sockets
            listeners = []
            for sock in sockets:
                sock.listen(config.backlog)
                listeners.append(_CappedListener(
                    trio.SocketListener(trio.socket.from_stdlib_socket(sock)), cap))
            task_status.started([f"http://{repr_socket_addr(s.family, s.getsockname())}"
                                 for s in sockets])
            connection = partial(TCPServer, asgi, config, context,
                                 ConnectionState(lifespan_state.copy()))
            async with trio.open_nursery() as accepting:
                accepting.start_soon(partial(trio.serve_listeners, connection, listeners,
                                             handler_nursery=handlers))
                await shutdown_trigger()
                accepting.cancel_scope.cancel()  # serve_listeners closes the listeners
            await context.terminated.set()  # idle keep-alive connections close now
            handlers.cancel_scope.deadline = trio.current_time() + config.graceful_timeout
        await lifespan.wait_for_shutdown()
        lifespan_nursery.cancel_scope.cancel()
