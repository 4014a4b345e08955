"""The JSON fast path: structlog events written straight to the handler's stream."""

import io
import json
import logging

import pytest
import structlog

from daemon.log import REDACTED, configure_logging


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_a_cached_logger_follows_a_reconfiguration():
    first, second = io.StringIO(), io.StringIO()
    configure_logging("json", "info", stream=first)
    logger = structlog.get_logger("postroom.test.cached")
    logger.info("one")
    configure_logging("json", "info", stream=second)
    logger.info("two")
    assert [e["event"] for e in lines(first)] == ["one"]
    assert [e["event"] for e in lines(second)] == ["two"]


def test_structlog_and_stdlib_lines_share_one_stream_in_order():
    out = io.StringIO()
    configure_logging("json", "info", stream=out)
    structlog.get_logger("postroom.test").info("first")
    logging.getLogger("imapclient").warning("second")
    structlog.get_logger("postroom.test").info("third")
    assert [(e["event"], e.get("message"), e["logger"]) for e in lines(out)] == [
        ("first", None, "postroom.test"), ("library.log", "second", "imapclient"),
        ("third", None, "postroom.test")]  # a library's text under a stable name


def test_stdlib_levels_still_filter_structlog_events():
    out = io.StringIO()
    configure_logging("json", "info", stream=out,
                      quiet_loggers=("postroom.test.quiet",))
    quiet = structlog.get_logger("postroom.test.quiet")
    quiet.info("dropped")
    quiet.warning("kept")
    structlog.get_logger("postroom.test").debug("below the root level")
    assert [e["event"] for e in lines(out)] == ["kept"]


@pytest.mark.parametrize("text", [
    "PASSWD: hunter2", "clientState=hunter2", "REFRESH_TOKEN hunter2",
    "Authorization: BEARER hunter2", "Password = 'hunter2'", "client_secret:hunter2",
    "access_token=hunter2", "bearer hunter2",
])
def test_inline_secrets_in_any_case_are_redacted(text):
    out = io.StringIO()
    configure_logging("json", "info", stream=out)
    structlog.get_logger("postroom.test").info("oauth.note", note=text)
    (entry,) = lines(out)
    assert "hunter2" not in out.getvalue()
    assert REDACTED in entry["note"]
