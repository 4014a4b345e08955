"""Logging: JSON lines, stdlib routing, and secrets that never reach a line."""

import io
import json
import logging

import structlog

from daemon.log import REDACTED, configure_logging, redact_secrets


def lines(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]


def test_json_lines_with_dotted_events_and_bound_context():
    out = io.StringIO()
    configure_logging("json", "info", stream=out)
    structlog.contextvars.bind_contextvars(account="support")
    try:
        structlog.get_logger("postroom.test").info("imap.idle.wake", uid=42)
    finally:
        structlog.contextvars.clear_contextvars()
    (entry,) = lines(out)
    assert entry["event"] == "imap.idle.wake"
    assert entry["account"] == "support"
    assert entry["uid"] == 42
    assert entry["level"] == "info"
    assert "timestamp" in entry


def test_stdlib_loggers_go_through_the_same_pipeline():
    out = io.StringIO()
    configure_logging("json", "info", stream=out)
    logging.getLogger("imapclient").warning("login password=hunter2 failed")
    (entry,) = lines(out)
    assert entry["logger"] == "imapclient"
    assert "hunter2" not in out.getvalue()


def test_secret_fields_are_redacted_everywhere():
    out = io.StringIO()
    configure_logging("json", "info", stream=out)
    structlog.get_logger("t").info("oauth.token", access_token="eyJ.secret",
                                   nested={"client_secret": "s3cr3t", "ok": 1},
                                   note="Authorization: Bearer abc.def")
    text = out.getvalue()
    for secret in ("eyJ.secret", "s3cr3t", "abc.def"):
        assert secret not in text
    (entry,) = lines(out)
    assert entry["access_token"] == REDACTED
    assert entry["nested"] == {"client_secret": REDACTED, "ok": 1}


def test_redact_processor_keeps_harmless_fields():
    event = redact_secrets(None, "info", {"event": "x", "account": "a", "password": "p"})
    assert event == {"event": "x", "account": "a", "password": REDACTED}


def test_tracebacks_never_show_local_variables():
    out = io.StringIO()
    configure_logging("json", "info", stream=out)

    def login(password):
        raise RuntimeError("login failed")

    try:
        login("hunter2-secret")
    except RuntimeError:
        structlog.get_logger("t").exception("imap.login.failed")
    assert "hunter2-secret" not in out.getvalue()
    (entry,) = lines(out)
    assert entry["exception"][0]["exc_type"] == "RuntimeError"
