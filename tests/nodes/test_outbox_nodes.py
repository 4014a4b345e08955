"""Two nodes' outbox actors on one PostgreSQL queue: every item sent exactly once, and a
dead sender's item sent again by the other with the risk recorded."""

from __future__ import annotations

from collections import Counter
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio

from daemon.actors.outbox import OutboxActor
from daemon.config import load_config
from daemon.store import AsyncStore, OutboxItem, open_store
from tests.nodes.conftest import write_node_config

pytestmark = pytest.mark.postgres
ITEMS = 120


class Recorder:
    """A transport that records every Message-ID it is asked to send."""

    def __init__(self, sent: Counter[str]) -> None:
        self.sent = sent

    @asynccontextmanager
    async def session(self) -> Any:
        yield self

    async def send(self, item: OutboxItem) -> str:
        await trio.sleep(0.001)  # let the other node's round interleave
        self.sent[item.message_id] += 1
        return "250 ok"


async def test_two_nodes_send_each_queued_item_exactly_once(tmp_path: Path, pg_url: str):
    config = load_config(write_node_config(tmp_path, pg_url, "a", ["m1", "m2", "m3"]))
    store = AsyncStore(await trio.to_thread.run_sync(open_store, pg_url))
    try:
        def queue(tx: Any) -> None:
            for n in range(ITEMS):
                tx.enqueue(OutboxItem(f"m{n % 3 + 1}", f"r{n}@x.example", f"<o{n}@x>", b"raw"))

        await store.run(queue)
        sent: Counter[str] = Counter()
        actors = [OutboxActor(config, store, node=node, batch_size=10, sent_copy=None,
                              transports=lambda c, a: Recorder(sent)) for node in ("a", "b")]
        handled: dict[str, int] = {}

        async def drain(actor: OutboxActor) -> None:
            handled[actor.node] = 0
            while n := await actor.deliver_due():
                handled[actor.node] += n

        async with trio.open_nursery() as nursery:
            for actor in actors:
                nursery.start_soon(drain, actor)
        assert sum(sent.values()) == ITEMS and set(sent.values()) == {1}
        assert handled["a"] > 0 and handled["b"] > 0  # both took a share
        assert await store.run(lambda tx: tx.count_outbox("sent")) == ITEMS
    finally:
        await store.aclose()


async def test_a_dead_senders_item_goes_out_again_from_the_other_node(tmp_path: Path,
                                                                      pg_url: str):
    config = load_config(write_node_config(tmp_path, pg_url, "a", ["m1"]))
    store = AsyncStore(await trio.to_thread.run_sync(open_store, pg_url))
    try:
        id = await store.run(lambda tx: tx.enqueue(
            OutboxItem("m1", "r@x.example", "<dead@x>", b"raw")))
        sent: Counter[str] = Counter()

        def crash(tx: Any) -> None:  # "a" claimed it and died in the SMTP call
            now = datetime.now(UTC)
            tx.claim_due(now, "a", now + timedelta(seconds=0.5))
            assert tx.mark_sending(id, "a")

        await store.run(crash)
        b = OutboxActor(config, store, node="b", sent_copy=None,
                        transports=lambda c, a: Recorder(sent))
        assert await b.deliver_due() == 0  # a's claim still holds
        with trio.fail_after(10):
            while not await b.deliver_due():  # until the visibility timeout lapses
                await trio.sleep(0.1)
        assert sent == Counter({"<dead@x>": 1})
        events = await store.run(lambda tx: tx.events_since(0, 100))
        assert [e.data["outbox"] for e in events if e.kind == "outbox.resend_risk"] == [id]
    finally:
        await store.aclose()
