"""Helpers for end-to-end tests: a throw-away config with a Maildir and SQLite."""

from __future__ import annotations

from pathlib import Path

import pytest

# The helpers live in tests/helpers.py; re-exported for tests that import them from here.
from tests.helpers import DEMO, drop, make_message, write_config  # noqa: F401


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
