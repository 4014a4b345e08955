"""A misbehaving network between the daemon and a server: a Trio TCP proxy with chaos.

:func:`open_tcp_proxy` listens on a free loopback port and forwards every connection to
``target``. Faults come from two places:

* manual controls, for tests that need a fault at an exact moment:
  :meth:`TcpProxy.drop_all` (close both sides: the peers read EOF),
  :meth:`TcpProxy.reset_all` (close with ``SO_LINGER`` 0: the peers get a TCP RST) and
  :meth:`TcpProxy.stall` (stop forwarding in both directions for a while; the bytes stay
  queued in the proxy and flow again afterwards, nothing is lost);
* a :class:`Chaos` schedule: a fixed number of faults drawn from a seeded
  :class:`random.Random`, so the same seed always gives the same list of faults (kinds,
  pauses between them, stall lengths; see :meth:`Chaos.plan`). Only *when* a fault lands
  relative to the traffic depends on real time.

A drop or reset waits until there is a connection to hit, so every planned fault hurts
somebody; :attr:`TcpProxy.chaos_done` is set once the last one has been dealt (and its
stall, if it was one, lifted). :attr:`TcpProxy.counters` counts connections, faults and
bytes.

Loopback only: the proxy listens on 127.0.0.1 and refuses a non-loopback target.

Example::

    async with open_tcp_proxy(("127.0.0.1", dovecot.imap_port),
                              chaos=Chaos(seed=7, faults=10)) as proxy:
        ...  # point the client at proxy.port
        await proxy.chaos_done.wait()
"""

from __future__ import annotations

__all__ = ["Chaos", "Fault", "FaultKind", "ProxyCounters", "TcpProxy", "open_tcp_proxy"]

import enum
import ipaddress
import random
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass

import trio

HOST = "127.0.0.1"
_CHUNK = 64 * 1024
_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, timeout 0: close() sends RST


class FaultKind(enum.Enum):
    DROP = "drop"    # close both sides cleanly (FIN): the peers read EOF
    STALL = "stall"  # stop forwarding for a while, then resume
    RESET = "reset"  # close both sides with RST: the peers get ECONNRESET


@dataclass(frozen=True, slots=True)
class Fault:
    """One planned fault: wait ``after`` seconds, then do ``kind`` (a stall lasts
    ``seconds``)."""

    after: float
    kind: FaultKind
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class Chaos:
    """A seeded plan of faults.

    Attributes:
        seed: the same seed gives the same :meth:`plan`.
        faults: how many faults to deal in all.
        pause: (min, max) seconds between two faults, drawn uniformly.
        stall: (min, max) length of a stall in seconds, drawn uniformly.
        weights: relative weights of drop, stall and reset.
    """

    seed: int
    faults: int = 10
    pause: tuple[float, float] = (0.05, 0.5)
    stall: tuple[float, float] = (0.2, 1.5)
    weights: tuple[int, int, int] = (1, 1, 1)

    def plan(self) -> tuple[Fault, ...]:
        """The faults this seed deals, in order."""
        rng = random.Random(self.seed)
        kinds = (FaultKind.DROP, FaultKind.STALL, FaultKind.RESET)
        plan = []
        for _ in range(self.faults):
            after = rng.uniform(*self.pause)
            kind = rng.choices(kinds, weights=self.weights)[0]
            seconds = rng.uniform(*self.stall) if kind is FaultKind.STALL else 0.0
            plan.append(Fault(round(after, 3), kind, round(seconds, 3)))
        return tuple(plan)


@dataclass
class ProxyCounters:
    """What the proxy has seen and done so far (mutable; read it, don't write it)."""

    accepted: int = 0
    drops: int = 0
    stalls: int = 0
    resets: int = 0
    bytes_to_server: int = 0
    bytes_to_client: int = 0

    @property
    def faults(self) -> int:
        return self.drops + self.stalls + self.resets


class _Link:
    """One proxied connection: the client's stream, the server's, and their pumps."""

    def __init__(self, client: trio.SocketStream, server: trio.SocketStream) -> None:
        self.client = client
        self.server = server
        self.scope = trio.CancelScope()

    async def close(self, *, reset: bool) -> None:
        """Close both sides; with ``reset``, both get RST (set before either closes)."""
        streams = (self.client, self.server)
        if reset:
            for stream in streams:
                with suppress(OSError, trio.ClosedResourceError):
                    stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RST)
        self.scope.cancel()
        for stream in streams:
            await stream.aclose()


class TcpProxy:
    """A running proxy; made by :func:`open_tcp_proxy`, not directly.

    Attributes:
        port: the loopback port clients connect to.
        counters: connections, faults and bytes so far.
        chaos_done: set once every fault of the chaos plan has been dealt (at once when
            there is no plan).
    """

    def __init__(self, nursery: trio.Nursery, target: tuple[str, int], port: int) -> None:
        self._nursery = nursery
        self._target = target
        self.port = port
        self.counters = ProxyCounters()
        self.chaos_done = trio.Event()
        self._links: set[_Link] = set()
        self._linked = trio.Event()  # set while at least one connection is open
        self._flowing = trio.Event()
        self._flowing.set()
        self._stall_until = 0.0
        self._fault_dealt = trio.Event()

    # -- manual controls ------------------------------------------------------------------

    def stall(self, seconds: float) -> None:
        """Stop forwarding in both directions for ``seconds`` (extends a running stall).

        Connections stay open and nothing is lost: bytes wait in the socket buffers.
        Not a checkpoint.
        """
        if seconds <= 0:
            raise ValueError(f"seconds must be > 0, got {seconds}")
        self._count("stalls")
        until = trio.current_time() + seconds
        if self._flowing.is_set():
            self._flowing = trio.Event()
            self._stall_until = until
            self._nursery.start_soon(self._lift_stall)
        else:
            self._stall_until = max(self._stall_until, until)

    async def drop_all(self) -> int:
        """Close every open connection cleanly (FIN both ways). A checkpoint.

        Returns:
            How many connections were closed.
        """
        return await self._close_all(reset=False)

    async def reset_all(self) -> int:
        """Abort every open connection with a TCP RST both ways. A checkpoint.

        Returns:
            How many connections were reset.
        """
        return await self._close_all(reset=True)

    async def next_fault(self) -> None:
        """Return once the next fault (manual or planned) has been dealt, or the chaos
        plan has run out (check :attr:`chaos_done`). A checkpoint."""
        await self._fault_dealt.wait()

    @property
    def open_connections(self) -> int:
        return len(self._links)

    # -- internals ------------------------------------------------------------------------

    async def _close_all(self, *, reset: bool) -> int:
        links, self._links = list(self._links), set()
        self._linked = trio.Event()
        for link in links:
            await link.close(reset=reset)
        if links:
            self._count("resets" if reset else "drops")
        return len(links)

    def _count(self, fault: str) -> None:
        setattr(self.counters, fault, getattr(self.counters, fault) + 1)
        self._wake_fault_waiters()

    def _wake_fault_waiters(self) -> None:
        self._fault_dealt.set()
        self._fault_dealt = trio.Event()

    async def _lift_stall(self) -> None:
        while (left := self._stall_until - trio.current_time()) > 0:
            await trio.sleep(left)
        self._flowing.set()

    async def _serve(self, listener: trio.SocketListener) -> None:
        async with listener:
            while True:
                client = await listener.accept()
                self.counters.accepted += 1
                self._nursery.start_soon(self._handle, client)

    async def _handle(self, client: trio.SocketStream) -> None:
        try:
            server = await trio.open_tcp_stream(*self._target)
        except OSError:
            await client.aclose()
            return
        link = _Link(client, server)
        self._links.add(link)
        self._linked.set()
        try:
            with link.scope:
                async with trio.open_nursery() as pumps:
                    pumps.start_soon(self._pump, client, server, "bytes_to_server", link)
                    pumps.start_soon(self._pump, server, client, "bytes_to_client", link)
        finally:
            if link in self._links:
                self._links.discard(link)
                if not self._links:
                    self._linked = trio.Event()
            with trio.CancelScope(shield=True):
                await client.aclose()
                await server.aclose()

    async def _pump(self, source: trio.SocketStream, sink: trio.SocketStream, counter: str,
                    link: _Link) -> None:
        """Copy ``source`` to ``sink`` until EOF or an error; then end the whole link."""
        try:
            while True:
                data = await source.receive_some(_CHUNK)
                await self._flowing.wait()
                if not data:
                    break
                await sink.send_all(data)
                setattr(self.counters, counter, getattr(self.counters, counter) + len(data))
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        link.scope.cancel()

    async def _run_chaos(self, chaos: Chaos) -> None:
        for fault in chaos.plan():
            await trio.sleep(fault.after)
            if fault.kind is FaultKind.STALL:
                self.stall(fault.seconds)
                await self._flowing.wait()
                continue
            await self._linked.wait()
            await self._close_all(reset=fault.kind is FaultKind.RESET)
        self.chaos_done.set()
        self._wake_fault_waiters()


@asynccontextmanager
async def open_tcp_proxy(target: tuple[str, int], *, chaos: Chaos | None = None,
                         ) -> AsyncIterator[TcpProxy]:
    """Run a proxy to ``target`` for the duration of the block.

    Args:
        target: ``(host, port)`` of the real server; must be a loopback address.
        chaos: a plan of faults to deal from the start; None for manual control only.

    Yields:
        The running :class:`TcpProxy` (its :attr:`~TcpProxy.port` is listening).

    Raises:
        ValueError: ``target`` is not on loopback.
    """
    if not ipaddress.ip_address(socket.gethostbyname(target[0])).is_loopback:
        raise ValueError(f"the proxy only forwards to loopback, not {target[0]}")
    listeners = await trio.open_tcp_listeners(0, host=HOST)
    [listener] = listeners
    port = listener.socket.getsockname()[1]
    async with trio.open_nursery() as nursery:
        proxy = TcpProxy(nursery, target, port)
        nursery.start_soon(proxy._serve, listener)
        if chaos is not None:
            nursery.start_soon(proxy._run_chaos, chaos)
        else:
            proxy.chaos_done.set()
        try:
            yield proxy
        finally:
            nursery.cancel_scope.cancel()
