"""Nothing escapes the processor: mutated and truncated real-world messages.

Every input ends as an outcome; a failure is a stored error with the raw bytes kept.
"""

from __future__ import annotations

from pathlib import Path

import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from daemon.actors.processor import Processor
from daemon.app import build_plugin_manager, open_daemon_store
from daemon.config import parse_config
from daemon.messages import OutcomeStatus, RawMessage
from tests.crm.conftest import BASE, SECRET

CORPUS = sorted((Path(__file__).parents[1] / "corpus").glob("*.eml"))
SAMPLES = [p.read_bytes() for p in CORPUS]


@st.composite
def mangled(draw: st.DrawFn) -> bytes:
    raw = bytearray(draw(st.sampled_from(SAMPLES)))
    for _ in range(draw(st.integers(0, 6))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "dup"]))
        pos = draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[pos] = draw(st.integers(0, 255))
        elif op == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=40))
        elif op == "delete":
            del raw[pos:pos + draw(st.integers(1, 200))]
        elif op == "truncate":
            del raw[pos:]
        elif op == "dup":
            raw[pos:pos] = raw[max(0, pos - 300):pos]
    return bytes(raw)


class _Box:
    processor: Processor | None = None
    counter = 0


async def _process(box: _Box, tmp: Path, raw: bytes) -> tuple:
    if box.processor is None:
        config = parse_config(BASE, file="postroom.toml", base_dir=tmp)
        store = await open_daemon_store(config)
        box.processor = Processor(config, store, build_plugin_manager(config), secret=SECRET)
    box.counter += 1
    key = f"fuzz:{box.counter}"
    outcome = await box.processor.process(RawMessage(account="support", source_key=key,
                                                     raw=raw))
    record = await box.processor.store.run(lambda tx: tx.get_raw(key))
    return outcome, record


def test_no_input_escapes_the_processor(tmp_path: Path):
    box = _Box()

    @settings(max_examples=150, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(st.one_of(mangled(), st.binary(max_size=2000)))
    def check(raw: bytes) -> None:
        outcome, record = trio.run(_process, box, tmp_path, raw)
        assert record is not None, "every input leaves a raw record"
        assert record.status == outcome.status.value
        if outcome.status is OutcomeStatus.FAILED:
            assert record.raw == raw and record.error
        if outcome.status in (OutcomeStatus.IMPORTED, OutcomeStatus.DISCARDED):
            assert record.raw == raw

    check()
    assert box.counter >= 150
