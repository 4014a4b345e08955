"""The processor wakes the outbox after a commit that queued mail, once per transaction.

Whether mail was queued is returned by the store function, not left on the processor by
the store thread (issue 10).
"""

from __future__ import annotations

from daemon.actors.processor import Processor
from daemon.messages import RawMessage, source_key
from tests.crm.conftest import NOW, SECRET, mail, make_harness

__all__ = ["make_harness"]  # the fixture, used by name below

AUTO_REPLY = {"auto_reply": {"enabled": True, "body": "Thanks!"}}


def raw(n: int, **kw) -> RawMessage:
    return RawMessage(account="support", source_key=source_key("test", "wake", n),
                      raw=mail(f"Help {n}", message_id=f"w{n}@acme.example", **kw),
                      received_at=NOW)


async def processor_for(make_harness, queue_mail, wakeups: list[str]) -> Processor:
    h = await make_harness(account=AUTO_REPLY)
    return Processor(h.config, h.store, h.processor.pm, secret=SECRET, queue_mail=queue_mail,
                     mail_queued=lambda: wakeups.append("wake"), now=lambda: NOW)


async def test_a_commit_that_queued_mail_wakes_the_outbox_once(make_harness):
    wakeups: list[str] = []
    queued: list[str] = []

    def queue_mail(tx, account, **kw):
        queued.append(kw["kind"])
        return [len(queued)]

    processor = await processor_for(make_harness, queue_mail, wakeups)
    await processor.process(raw(1))
    assert queued == ["auto_reply"] and wakeups == ["wake"]
    await processor.process_many([raw(2), raw(3)])  # one transaction, two auto replies
    assert queued == ["auto_reply"] * 3 and wakeups == ["wake"] * 2


async def test_a_commit_that_queued_nothing_does_not_wake_the_outbox(make_harness):
    wakeups: list[str] = []
    calls: list[str] = []
    processor = await processor_for(
        make_harness, lambda tx, account, **kw: calls.append(kw["kind"]) or [], wakeups)
    await processor.process_many([raw(1), raw(2)])
    assert calls == ["auto_reply", "auto_reply"]  # asked, but nothing was due
    assert wakeups == []
