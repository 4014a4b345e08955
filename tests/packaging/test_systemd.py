"""The systemd unit: its security score, ``systemd-analyze verify``, and the unit and the
example configuration working together under the directories systemd sets up."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from daemon.config import load_config, load_secret_key
from daemon.shipped import shipped_file
from daemon.store import open_store

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "service" / "systemd" / "postroom.service"
EXAMPLE = REPO / "config" / "postroom.example.toml"

needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed")


def directives(name: str) -> list[str]:
    return re.findall(rf"^{name}=(.*)$", UNIT.read_text(), re.MULTILINE)


@needs_analyze
def test_the_unit_scores_at_most_2_0():
    result = subprocess.run(["systemd-analyze", "security", "--offline=yes", str(UNIT)],
                            capture_output=True, text=True, check=False)
    found = re.search(r"Overall exposure level for postroom\.service: (\d+\.\d+)",
                      result.stdout)
    assert found, result.stdout + result.stderr
    assert float(found[1]) <= 2.0


@needs_analyze
def test_the_unit_verifies(tmp_path):
    # verify checks that ExecStart's program exists: point it at this installation's.
    postroom = Path(sys.executable).with_name("postroom")
    assert postroom.exists()
    unit = tmp_path / "postroom.service"
    unit.write_text(UNIT.read_text().replace("/opt/postroom/bin/postroom", str(postroom)))
    result = subprocess.run(["systemd-analyze", "verify", str(unit)],
                            capture_output=True, text=True, check=False)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_unit_sets_what_the_daemon_relies_on():
    assert directives("Type") == ["notify"]
    assert directives("StateDirectory") == ["postroom"]
    assert directives("UMask") == ["0077"]
    assert int(directives("LimitNOFILE")[0]) >= 65536
    assert directives("ExecStart") == [
        "/opt/postroom/bin/postroom run --config /etc/postroom/postroom.toml"]


def test_the_unit_and_the_example_config_name_the_same_credentials():
    loaded = {line.split(":", 1)[0] for line in directives("LoadCredential")}
    config_lines = [line for line in EXAMPLE.read_text().splitlines()
                    if not line.lstrip().startswith("#")]
    named = set(re.findall(r'_file = "%d/([^"]+)"', "\n".join(config_lines)))
    assert named == loaded == {"secret-key", "api-token", "entra-secret", "google-secret",
                               "support-password"}


def test_under_systemd_the_example_config_reads_credentials_and_stores_in_state(tmp_path):
    """As installed: /etc/postroom/postroom.toml, credentials and state set up by systemd."""
    etc = tmp_path / "etc" / "postroom"
    etc.mkdir(parents=True)
    shutil.copy(shipped_file("postroom.example.toml"), etc / "postroom.toml")
    shutil.copy(shipped_file("runtime.example.json"), etc / "runtime.example.json")
    credentials = tmp_path / "run" / "credentials" / "postroom.service"
    credentials.mkdir(parents=True)
    values = {}
    for line in directives("LoadCredential"):
        name = line.split(":", 1)[0]
        values[name] = f"{name}-value-0123456789-0123456789-0123456789"
        (credentials / name).write_text(values[name] + "\n")
    state = tmp_path / "var" / "lib" / "postroom"
    state.mkdir(parents=True)
    environ = {"CREDENTIALS_DIRECTORY": str(credentials), "STATE_DIRECTORY": str(state)}

    config = load_config(etc / "postroom.toml", environ=environ)

    assert config.daemon.secret_key.reveal() == values["secret-key"]
    assert config.http.api_token.reveal() == values["api-token"]
    assert [a.client_secret.reveal() for a in config.oauth_apps] == [
        values["entra-secret"], values["google-secret"]]
    assert config.accounts[0].password.reveal() == values["support-password"]
    assert config.daemon.store == f"sqlite:///{state}/postroom.db"
    assert len(load_secret_key(config)) == 32
    open_store(config.daemon.store).close()
    assert (state / "postroom.db").is_file()
    assert sorted(p.name for p in etc.iterdir()) == ["postroom.toml", "runtime.example.json"]


def test_an_explicit_store_wins_over_the_state_directory(tmp_path):
    (tmp_path / "postroom.toml").write_text('[daemon]\nstore = "sqlite:///here.db"\n')
    config = load_config(tmp_path / "postroom.toml",
                         environ={"STATE_DIRECTORY": str(tmp_path / "state")})
    assert config.daemon.store == f"sqlite:///{tmp_path}/here.db"


def test_the_first_of_several_state_directories_is_used(tmp_path):
    (tmp_path / "postroom.toml").write_text("")
    config = load_config(tmp_path / "postroom.toml",
                         environ={"STATE_DIRECTORY": "/var/lib/postroom:/var/lib/other"})
    assert config.daemon.store == "sqlite:////var/lib/postroom/postroom.db"
