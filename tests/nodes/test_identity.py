"""Node identity (``[daemon] node_id``, ``--bind``) and SQLite's one-daemon guard."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from daemon.app import open_daemon
from daemon.cli import _check_bind, _with_bind
from daemon.config import load_config
from daemon.nodes import SingleNodeError, hold_single_node_lock, lock_path, node_id
from tests.e2e.conftest import write_config


def test_node_id_defaults_to_hostname_and_pid(tmp_path: Path):
    config = load_config(write_config(tmp_path, http=False))
    assert node_id(config) == f"{socket.gethostname()}:{os.getpid()}"


def test_node_id_from_the_config(tmp_path: Path):
    config = load_config(write_config(tmp_path, http=False, extra_daemon='node_id = "n1"'))
    assert node_id(config) == "n1"


def test_bind_on_the_command_line_overrides_the_config(tmp_path: Path):
    config = load_config(write_config(tmp_path))
    assert _with_bind(config, "127.0.0.1:9911").http.bind == "127.0.0.1:9911"
    with pytest.raises(SystemExit):
        _check_bind("no-port")


async def test_status_names_the_node_and_each_accounts_owner(tmp_path: Path):
    config = load_config(write_config(tmp_path, extra_daemon='node_id = "n1"'))
    async with open_daemon(config) as daemon:
        status = daemon.status()
    assert status["node"] == "n1"
    assert [(a["account"], a["owner"]) for a in status["accounts"]] == [("support", "n1")]


async def test_a_second_daemon_on_the_same_sqlite_file_refuses_to_start(tmp_path: Path):
    config = load_config(write_config(tmp_path, http=False))
    async with open_daemon(config):
        with pytest.raises(BaseExceptionGroup) as refused:
            async with open_daemon(config):
                pass  # pragma: no cover - must not start
        assert refused.group_contains(SingleNodeError,
                                      match="SQLite store serves one daemon only")
    async with open_daemon(config) as again:  # the first one's lock went with it
        assert again.actors_started


def test_the_lock_names_the_holder_and_is_dropped_with_the_process(tmp_path: Path):
    database = tmp_path / "x.db"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from pathlib import Path; "
         "from daemon.nodes import hold_single_node_lock as h\n"
         f"with h(Path({str(database)!r})):\n print('held', flush=True); time.sleep(60)"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(SingleNodeError, match=f"pid {holder.pid}"):
            with hold_single_node_lock(database):
                pass  # pragma: no cover
    finally:
        holder.kill()
        holder.wait()
    with hold_single_node_lock(database):  # SIGKILL left no stale lock
        assert lock_path(database).read_text().strip() == str(os.getpid())


def test_run_refuses_a_second_daemon_with_the_reason(tmp_path: Path):
    config = write_config(tmp_path, http=False)
    with hold_single_node_lock(load_config(config).daemon.sqlite_path):
        result = subprocess.run([sys.executable, "-m", "daemon", "run", "--config",
                                 str(config)], capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "SQLite store serves one daemon only" in result.stderr


async def test_in_memory_and_postgres_stores_take_no_lock():
    with hold_single_node_lock(None):
        await trio.lowlevel.checkpoint()
