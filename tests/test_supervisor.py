"""The one-for-one supervisor, under a MockClock: exact delays, parking, wake-ups."""

import itertools

import pytest
import trio
import trio.testing

from daemon.actors.status import AccountHandle, AccountState, AccountStatus
from daemon.errors import AuthError, ConnectError
from daemon.supervisor import RestartPolicy, backoff_delay, supervise
from tests.helpers import wait_for_status

POLICY = RestartPolicy(base=1.0, cap=8.0, reset_after=100.0, park_after_auth_failures=3)


def always_one() -> float:
    return 0.999999


@pytest.fixture
def clock():
    return trio.testing.MockClock(autojump_threshold=0)


def handle() -> AccountHandle:
    return AccountHandle(AccountStatus("acct", kind="test"))


def test_backoff_grows_exponentially_to_the_cap():
    delays = [backoff_delay(a, POLICY, rand=lambda: 1.0) for a in range(6)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_backoff_is_full_jitter():
    assert backoff_delay(3, POLICY, rand=lambda: 0.0) == 0.0
    assert backoff_delay(3, POLICY, rand=lambda: 0.5) == 4.0


def test_backoff_survives_huge_attempt_counts():
    assert backoff_delay(10_000, POLICY, rand=lambda: 1.0) == 8.0


async def test_crashing_actor_is_restarted_with_growing_delays(clock):
    starts: list[float] = []

    async def actor(task_status=trio.TASK_STATUS_IGNORED):
        starts.append(trio.current_time())
        task_status.started()
        if len(starts) < 5:
            raise ConnectError("connection refused")

    h = handle()
    await supervise(actor, h, POLICY, rand=always_one)
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(starts)]
    assert gaps == [1.0, 2.0, 4.0, 8.0]
    assert h.status.reconnects == 4
    assert h.status.last_error == "ConnectError: connection refused"


async def test_attempts_reset_after_a_stable_period(clock):
    starts: list[float] = []

    async def actor(task_status=trio.TASK_STATUS_IGNORED):
        starts.append(trio.current_time())
        task_status.started()
        if len(starts) == 3:
            await trio.sleep(POLICY.reset_after)  # ran stably, then crashed
        if len(starts) < 5:
            raise RuntimeError("bug")

    await supervise(actor, handle(), POLICY, rand=always_one)
    gaps = [round(b - a, 3) for a, b in itertools.pairwise(starts)]
    # 1, 2, then a stable run of 100 s resets the counter: 100 + 1, then 2 again.
    assert gaps == [1.0, 2.0, 101.0, 2.0]


async def test_auth_errors_park_the_actor_until_woken(clock):
    attempts = 0

    async def actor(task_status=trio.TASK_STATUS_IGNORED):
        nonlocal attempts
        attempts += 1
        raise AuthError("[AUTHENTICATIONFAILED] Authentication failed.")

    h = handle()
    async with trio.open_nursery() as nursery:
        await nursery.start(supervise, actor, h, POLICY)
        await wait_for_status(h.status, lambda s: s.state is AccountState.AUTH_ERROR)
        assert attempts == 3
        await trio.sleep(3600)  # parked: no retries however long we wait
        assert attempts == 3
        assert "Authentication failed" in h.status.last_error
        h.wake()
        await trio.testing.wait_all_tasks_blocked()
        assert attempts >= 4
        nursery.cancel_scope.cancel()


async def test_wake_cuts_a_backoff_short(clock):
    starts: list[float] = []

    async def actor(task_status=trio.TASK_STATUS_IGNORED):
        starts.append(trio.current_time())
        task_status.started()
        if len(starts) == 1:
            raise ConnectError("down")

    h = handle()
    policy = RestartPolicy(base=1000.0, cap=1000.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(supervise, actor, h, policy)
        await wait_for_status(h.status, lambda s: s.state is AccountState.BACKOFF)
        await trio.sleep(5)
        h.wake()
    assert starts[1] - starts[0] == pytest.approx(5.0)


async def test_started_is_reported_even_when_the_first_attempt_fails(clock):
    async def actor(task_status=trio.TASK_STATUS_IGNORED):
        raise ConnectError("dead server")

    h = handle()
    async with trio.open_nursery() as nursery:
        await nursery.start(supervise, actor, h, POLICY)
        assert h.status.state is AccountState.BACKOFF
        nursery.cancel_scope.cancel()


async def test_cancellation_passes_through(clock):
    async def actor(task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        await trio.sleep_forever()

    with trio.move_on_after(10) as scope:
        await supervise(actor, handle(), POLICY)
    assert scope.cancelled_caught


async def test_out_of_file_descriptors_backs_off_like_a_transient_error(clock):
    """Issue 9: EMFILE under a connection flood is retried, not logged as a crash."""
    import errno

    from structlog.testing import capture_logs

    starts: list[float] = []

    async def actor(task_status=trio.TASK_STATUS_IGNORED):
        starts.append(trio.current_time())
        task_status.started()
        if len(starts) < 3:
            raise OSError(errno.EMFILE, "Too many open files")

    h = handle()
    with capture_logs() as logs:
        await supervise(actor, h, POLICY, rand=always_one)
    assert [round(b - a, 3) for a, b in itertools.pairwise(starts)] == [1.0, 2.0]
    events = [e for e in logs if e["event"].startswith("actor.")]
    assert [e["event"] for e in events] == ["actor.backoff", "actor.backoff"]
    assert not any(e.get("exc_info") for e in events)
