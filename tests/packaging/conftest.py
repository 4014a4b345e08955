"""Shared fixtures for the packaging tests."""

from __future__ import annotations

import logging

import pytest
import structlog

from daemon import log as daemon_log


@pytest.fixture(autouse=True)
def restore_logging():
    """Tests here point logging at files they close: put the previous setup back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    direct = daemon_log._direct_handler[0]
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.configure(**config)
    daemon_log._direct_handler[0] = direct
