"""Log lines carry a syslog priority prefix when stderr is the journal (JOURNAL_STREAM)."""

from __future__ import annotations

import logging
import os

import pytest
import structlog

from daemon.log import configure_logging, stream_is_journal


@pytest.fixture
def stream(tmp_path):
    with open(tmp_path / "stderr", "w+", encoding="utf-8") as f:
        yield f


def journal_stream_of(stream) -> str:
    st = os.fstat(stream.fileno())
    return f"{st.st_dev}:{st.st_ino}"


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_lines_get_priorities_when_stderr_is_the_journal(stream, monkeypatch, fmt):
    monkeypatch.setenv("JOURNAL_STREAM", journal_stream_of(stream))
    configure_logging(fmt, "debug", stream=stream)
    log = structlog.get_logger(f"postroom.test.{fmt}")
    log.debug("t.debug")
    log.info("t.info")
    log.warning("t.warning")
    log.error("t.error")
    log.critical("t.critical")
    logging.getLogger("hypercorn.error").error("stdlib error")
    stream.seek(0)
    prefixes = [line[:3] for line in stream.read().splitlines()]
    assert prefixes == ["<7>", "<6>", "<4>", "<3>", "<2>", "<3>"]


def test_no_prefix_when_stderr_is_somewhere_else(stream, tmp_path, monkeypatch):
    with open(tmp_path / "other", "w") as other:
        monkeypatch.setenv("JOURNAL_STREAM", journal_stream_of(other))
    configure_logging("json", "info", stream=stream)
    structlog.get_logger("postroom.test.other").error("t.error")
    stream.seek(0)
    assert stream.read().startswith('{"')


def test_stream_is_journal_needs_the_variable_and_a_file(stream):
    assert stream_is_journal(stream, {}) is False
    assert stream_is_journal(stream, {"JOURNAL_STREAM": journal_stream_of(stream)}) is True
    assert stream_is_journal(object(), {"JOURNAL_STREAM": "1:2"}) is False
