"""``received_at`` comes from the size FETCH's INTERNALDATE (the body FETCH no longer
asks for it), for single messages and for whole fetch windows alike."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import trio

from daemon.messages import OutcomeStatus
from tests.actors.conftest import make_account
from tests.actors.test_imap import append, mid
from tests.fakes.dovecot import make_message
from tests.fakes.processor import FakeProcessor

pytestmark = pytest.mark.dovecot


@pytest.mark.parametrize("count", [1, 3])
async def test_received_at_is_the_internaldate(dovecot, imap_connection, start_account,
                                               processor: FakeProcessor, count):
    user = dovecot.add_user()
    arrivals = [datetime(2026, 3, day, 9, 30, 15, tzinfo=UTC) for day in range(1, count + 1)]
    raws = [make_message(f"Arrived {when:%d}") for when in arrivals]
    for raw, when in zip(raws, arrivals, strict=True):
        await append(dovecot, user, raw, when=when)
    await start_account(make_account(user), imap_connection)
    for raw, when in zip(raws, arrivals, strict=True):
        with trio.fail_after(10):
            committed = await processor.wait_for_message(mid(raw))
        assert committed.outcome.status is OutcomeStatus.IMPORTED
        received = committed.message.received_at
        assert received is not None
        assert received.astimezone(UTC) == when
