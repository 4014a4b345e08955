"""Shared fixtures for the packaging tests."""

from __future__ import annotations

import logging

import pytest
import structlog

from daemon import log as daemon_log


@pytest.fixture(autouse=True)
def restore_logging(monkeypatch):
    """Tests here configure logging into files they close: put the previous setup back.

    ``configure_logging`` caches each logger on first use; a module-level logger cached
    here would ignore later tests' ``capture_logs``, so caching is kept off.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    config = structlog.get_config()
    direct = daemon_log._direct_handler[0]
    configure = structlog.configure

    def uncached(**settings):
        configure(**{**settings, "cache_logger_on_first_use": False})

    monkeypatch.setattr(structlog, "configure", uncached)
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    configure(**config)
    daemon_log._direct_handler[0] = direct
