"""Drill 2, a bad network: the daemon reaches Dovecot only through a chaos proxy.

The proxy (tests/fakes/tcp_proxy.py) deals a seeded plan of drops (FIN), stalls and
resets (RST) to the daemon's IMAP connection while new mail keeps arriving: a slice of
messages is APPENDed (straight to Dovecot, not through the proxy) after every fault. The
daemon runs in this process (``run_daemon``) with a small ``backoff_cap_seconds`` and short
IMAP timeouts, so a stall longer than the read timeout breaks the session as a dead link
would.

After the last fault: the account must be idle and caught up (``last_uid`` at the newest
UID) within :data:`CATCH_UP_BOUND` — one full backoff, one timed-out read and the time
to import what piled up — and the store must hold exactly what an undisturbed import
stores (``lost=0 duplicated=0``), every message ``\\Seen`` on the server.

Real sockets, so real time; every wait is on an event and bounded by ``trio.fail_after``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
import trio

from benchmarks.messages import generate_messages
from daemon.app import open_daemon
from tests.fakes.dovecot import Dovecot, MailUser
from tests.fakes.tcp_proxy import Chaos, TcpProxy, open_tcp_proxy
from tests.helpers import wait_for_status
from tests.reliability.conftest import (
    ACCOUNT,
    LONG,
    Imap,
    caught_up_to,
    load_drill_config,
    reference_census,
    report,
    take_census,
    write_drill_config,
)

pytestmark = [pytest.mark.dovecot, pytest.mark.reliability]

SEEN = b"\\Seen"
BACKOFF_CAP = 2.0
READ_TIMEOUT = 1.0
#: Seconds from the last fault to "idle and caught up": a full backoff, a read that
#: times out, and the import of what arrived meanwhile.
CATCH_UP_BOUND = BACKOFF_CAP + READ_TIMEOUT + 3.0
SLICE = 10
CHAOS = (Chaos(seed=11, faults=40, pause=(0.1, 0.8), stall=(0.3, 2.0)) if LONG
         else Chaos(seed=11, faults=10, pause=(0.1, 0.6), stall=(0.3, 1.5)))


async def feed(dovecot: Dovecot, user: MailUser, raws: Sequence[bytes], proxy: TcpProxy,
               uids: list[int]) -> None:
    """APPEND a slice of ``raws`` after every fault the proxy deals, the rest at the end."""
    for start in range(0, len(raws), SLICE):
        part = list(raws[start:start + SLICE])
        uids += await trio.to_thread.run_sync(dovecot.append_many, user, part)
        if not proxy.chaos_done.is_set():
            await proxy.next_fault()  # or the end of the plan: then the rest at once


async def test_no_loss_and_catch_up_within_the_backoff_cap(dovecot: Dovecot, tmp_path: Path):
    user = dovecot.add_user()
    raws = list(generate_messages(SLICE * (CHAOS.faults + 2), seed=CHAOS.seed))
    uids: list[int] = []
    async with open_tcp_proxy((dovecot.host, dovecot.imap_port), chaos=CHAOS) as proxy:
        imap = Imap(port=proxy.port, user=user, backoff_cap=BACKOFF_CAP,
                    read_timeout=READ_TIMEOUT, connect_timeout=READ_TIMEOUT)
        config = load_drill_config(write_drill_config(tmp_path / "drill", imap), imap)
        async with open_daemon(config) as daemon:
            status = daemon.handles[ACCOUNT].status
            with trio.fail_after(120):
                await feed(dovecot, user, raws, proxy, uids)
                await proxy.chaos_done.wait()
            calm = trio.current_time()
            with trio.fail_after(CATCH_UP_BOUND + 5):
                await wait_for_status(status, caught_up_to(max(uids)))
            catch_up = trio.current_time() - calm
            reconnects = status.reconnects

    uidvalidity = await trio.to_thread.run_sync(dovecot.uidvalidity, user)
    reference = await reference_census(tmp_path / "reference", imap,
                                       list(zip(uids, raws, strict=True)), uidvalidity)
    census = await trio.to_thread.run_sync(take_census, tmp_path / "drill" / "postroom.db")
    lost, duplicated = census.lost_and_duplicated(reference)
    counters = proxy.counters
    report(f"chaos drill: messages={len(raws)} drops={counters.drops} stalls={counters.stalls} "
          f"resets={counters.resets} reconnects={reconnects} lost={lost} "
          f"duplicated={duplicated} catch_up={catch_up:.2f}s (bound {CATCH_UP_BOUND:.1f}s)")
    assert counters.faults == CHAOS.faults
    assert reconnects >= 1, "the chaos never broke the session: the drill tested nothing"
    assert (lost, duplicated) == (0, 0)
    assert census.statuses == reference.statuses
    assert catch_up <= CATCH_UP_BOUND
    on_server = await trio.to_thread.run_sync(dovecot.messages, user)
    assert [uid for uid, (flags, _) in on_server.items() if SEEN not in flags] == []
