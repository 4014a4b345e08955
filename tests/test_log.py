"""Logging: JSON lines, stdlib routing, and secrets that never reach a line."""

import io
import json
import logging
import re

import pytest
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


def _fail_with_password_in_the_message() -> None:
    try:
        try:
            raise OSError("connect: password=pw-in-cause-77 refused")
        except OSError as cause:
            raise RuntimeError("imap login failed: password hunter2-in-message") from cause
    except RuntimeError:
        structlog.get_logger("t").exception("imap.login.failed")


@pytest.mark.parametrize("fmt", ["json", "console"])
def test_issue_9_a_password_inside_an_exception_message_is_absent(fmt: str):
    out = io.StringIO()
    configure_logging(fmt, "info", stream=out)
    _fail_with_password_in_the_message()
    try:
        raise ValueError("token refresh failed: client_secret=abc-in-stdlib")
    except ValueError:
        logging.getLogger("hypercorn.error").exception("stdlib route")
    text = out.getvalue()
    for secret in ("hunter2-in-message", "pw-in-cause-77", "abc-in-stdlib"):
        assert secret not in text
    assert "imap login failed" in text and "RuntimeError" in text  # the rest is kept
    assert REDACTED in text


def test_console_lines_escape_control_characters_and_json_keeps_them_as_data():
    out = io.StringIO()
    configure_logging("console", "info", stream=out)
    subject = "Hi\x1b]0;pwned\x07\x1b[2J\r\nFAKE line \u202eevil"
    structlog.get_logger("t").info("message.imported", subject=subject)
    structlog.get_logger("t").info(subject)  # the event itself is printed as it is
    structlog.get_logger("t").info("message.imported", nospace="x\x1b[2J")
    try:
        raise ValueError(f"bad subject {subject}")
    except ValueError:
        structlog.get_logger("t").exception("message.failed")
    text = re.sub("\x1b\\[[0-9;]*m", "", out.getvalue())  # the renderer's own colours
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text
    assert "\u202e" not in text
    assert "\\x1b]0;pwned\\x07" in text and "\\u202e" in text
    first, second, third = text.splitlines()[:3]
    assert "FAKE line" in first and "FAKE line" in second  # no forged line of its own
    assert "nospace='x\\x1b[2J'" in third
    out = io.StringIO()
    configure_logging("json", "info", stream=out)
    structlog.get_logger("t").info("message.imported", subject=subject)
    (entry,) = lines(out)
    assert entry["subject"] == subject
