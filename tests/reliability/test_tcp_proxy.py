"""The chaos proxy itself (tests/fakes/tcp_proxy.py): forwarding, each fault, determinism.

Uses a loopback echo server; real sockets, so real time, bounded by ``trio.fail_after``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio

from tests.fakes.tcp_proxy import Chaos, FaultKind, open_tcp_proxy

pytestmark = pytest.mark.reliability


async def _echo(stream: trio.SocketStream) -> None:
    try:
        async for data in stream:
            await stream.send_all(data)
    except trio.BrokenResourceError:
        pass


@asynccontextmanager
async def echo_server() -> AsyncIterator[int]:
    async with trio.open_nursery() as nursery:
        [listener] = await nursery.start(partial(trio.serve_tcp, _echo, 0, host="127.0.0.1"))
        yield listener.socket.getsockname()[1]
        nursery.cancel_scope.cancel()


async def roundtrip(stream: trio.SocketStream, data: bytes) -> bytes:
    await stream.send_all(data)
    got = b""
    while len(got) < len(data):
        chunk = await stream.receive_some()
        if not chunk:
            break
        got += chunk
    return got


def test_the_same_seed_plans_the_same_faults():
    plan = Chaos(seed=7, faults=30).plan()
    assert plan == Chaos(seed=7, faults=30).plan()
    assert plan != Chaos(seed=8, faults=30).plan()
    assert len(plan) == 30
    assert {f.kind for f in plan} == set(FaultKind)
    assert all(f.seconds > 0 for f in plan if f.kind is FaultKind.STALL)


async def test_forwards_both_ways_and_counts_bytes():
    with trio.fail_after(5):
        async with echo_server() as port, open_tcp_proxy(("127.0.0.1", port)) as proxy:
            stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
            assert await roundtrip(stream, b"x" * 100_000) == b"x" * 100_000
            await stream.aclose()
    assert proxy.counters.accepted == 1
    assert proxy.counters.bytes_to_server == proxy.counters.bytes_to_client == 100_000


async def test_reset_all_gives_the_client_a_reset():
    with trio.fail_after(5):
        async with echo_server() as port, open_tcp_proxy(("127.0.0.1", port)) as proxy:
            stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
            assert await roundtrip(stream, b"ping") == b"ping"
            assert await proxy.reset_all() == 1
            with pytest.raises(trio.BrokenResourceError):
                await stream.receive_some()
    assert proxy.counters.resets == 1


async def test_drop_all_gives_the_client_eof():
    with trio.fail_after(5):
        async with echo_server() as port, open_tcp_proxy(("127.0.0.1", port)) as proxy:
            stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
            assert await roundtrip(stream, b"ping") == b"ping"
            assert await proxy.drop_all() == 1
            assert await stream.receive_some() == b""
            assert proxy.open_connections == 0
    assert proxy.counters.drops == 1


async def test_stall_holds_bytes_back_then_delivers_them():
    with trio.fail_after(5):
        async with echo_server() as port, open_tcp_proxy(("127.0.0.1", port)) as proxy:
            stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
            proxy.stall(0.3)
            began = trio.current_time()
            assert await roundtrip(stream, b"held") == b"held"
            assert trio.current_time() - began >= 0.3
    assert proxy.counters.stalls == 1


async def test_chaos_deals_every_planned_fault_then_says_so():
    chaos = Chaos(seed=3, faults=6, pause=(0.01, 0.05), stall=(0.01, 0.05))
    with trio.fail_after(10):
        async with echo_server() as port, open_tcp_proxy(("127.0.0.1", port),
                                                         chaos=chaos) as proxy:
            while not proxy.chaos_done.is_set():
                stream = await trio.open_tcp_stream("127.0.0.1", proxy.port)
                with trio.move_on_after(1):  # until chaos closes it
                    try:
                        while await roundtrip(stream, b"a") == b"a":
                            pass
                    except trio.BrokenResourceError:
                        pass  # a reset
                await stream.aclose()
    kinds = [f.kind for f in chaos.plan()]
    assert proxy.counters.drops == kinds.count(FaultKind.DROP)
    assert proxy.counters.resets == kinds.count(FaultKind.RESET)
    assert proxy.counters.stalls == kinds.count(FaultKind.STALL)


async def test_refuses_a_target_off_loopback():
    with pytest.raises(ValueError, match="loopback"):
        async with open_tcp_proxy(("192.0.2.1", 143)):
            pass
