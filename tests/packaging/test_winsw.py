"""The WinSW service definition: valid XML that runs the shipped entry point gracefully."""

from __future__ import annotations

import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path, PureWindowsPath

from daemon.config import DaemonSettings
from daemon.shipped import shipped_file

REPO = Path(__file__).resolve().parents[2]


def service() -> ET.Element:
    with shipped_file("service/windows/postroom.xml").open("rb") as f:
        return ET.parse(f).getroot()


def test_it_runs_the_postroom_entry_point_with_the_config_path():
    root = service()
    assert root.tag == "service"
    assert root.findtext("id") == "postroom"
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["postroom"] == "daemon.cli:main"
    executable = PureWindowsPath(root.findtext("executable"))
    assert executable.name == "postroom.exe" and executable.parent.name == "Scripts"
    assert root.findtext("arguments") == 'run --config "%ProgramData%\\postroom\\postroom.toml"'


def test_logs_go_under_programdata_and_the_stop_outlasts_the_grace_period():
    root = service()
    assert root.findtext("logpath") == "%ProgramData%\\postroom\\logs"
    assert root.find("log").get("mode") == "roll-by-size"
    seconds = int(root.findtext("stoptimeout").removesuffix(" sec"))
    assert seconds > DaemonSettings.model_fields["shutdown_grace_seconds"].default
