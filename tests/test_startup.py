"""``postroom run``: a fatal start-up error is one ``daemon.failed`` JSON line and exit 1."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.e2e.conftest import write_config


def run_postroom(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "POSTROOM_CONFIG"}
    return subprocess.run([sys.executable, "-m", "daemon", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def failure_lines(stderr: str) -> list[dict]:
    lines = [json.loads(line) for line in stderr.splitlines() if line.strip()]  # all JSON
    return [line for line in lines if line["level"] in ("error", "critical")]


def test_a_port_in_use_is_one_json_line_and_exit_1(tmp_path):
    path = write_config(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path.write_text(path.read_text().replace("127.0.0.1:0", f"127.0.0.1:{port}"))
        result = run_postroom("run", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    (failed,) = failure_lines(result.stderr)
    assert failed["event"] == "daemon.failed" and failed["reason"] == "port_in_use"
    assert failed["bind"] == f"127.0.0.1:{port}"


def test_an_unreadable_config_is_one_json_line_and_exit_1(tmp_path):
    path = write_config(tmp_path)
    path.write_text(path.read_text() + "\n[daemon\n")
    result = run_postroom("run", "--config", str(path), cwd=tmp_path)
    assert result.returncode == 1
    (line,) = [json.loads(x) for x in result.stderr.splitlines() if x.strip()]
    assert line["event"] == "daemon.failed" and line["reason"] == "config"
    assert "postroom.toml" in line["error"]
