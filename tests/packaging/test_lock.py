"""requirements.lock: pins every declared dependency with hashes, and is what is installed.

When one of these fails after a change to pyproject.toml, refresh the lock with
``bash scripts/lock.sh`` and commit it.
"""

from __future__ import annotations

import re
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^(?P<name>[A-Za-z0-9_.\[\]-]+)==(?P<version>[^\s;\\]+)"
                 r"(?:\s*;\s*(?P<marker>[^\\]+?))?\s*\\$")


def pins() -> list[tuple[str, str, str | None, list[str]]]:
    """(name, version, marker, hashes) for every entry of the lock."""
    found: list[tuple[str, str, str | None, list[str]]] = []
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if match := PIN.match(line):
            found.append((canonicalize_name(match["name"].split("[")[0]), match["version"],
                          match["marker"], []))
        elif line.strip().startswith("--hash=sha256:"):
            found[-1][3].append(line.strip())
    return found


def applicable() -> dict[str, str]:
    """The pins whose markers hold here, by canonical name."""
    return {name: ver for name, ver, marker, _ in pins()
            if marker is None or Marker(marker).evaluate()}


def declared() -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [Requirement(r) for r in project["dependencies"]
            + project["optional-dependencies"]["test"]]


def test_every_entry_has_hashes():
    entries = pins()
    assert len(entries) > 30
    assert [name for name, _, _, hashes in entries if not hashes] == []


def test_every_declared_dependency_is_pinned_within_its_range():
    locked = applicable()
    problems = []
    for requirement in declared():
        name = canonicalize_name(requirement.name)
        if name not in locked:
            problems.append(f"{name}: not in requirements.lock")
        elif not requirement.specifier.contains(locked[name], prereleases=True):
            problems.append(f"{name}: locked {locked[name]}, pyproject wants "
                            f"{requirement.specifier}")
    assert problems == [], "run: bash scripts/lock.sh"


def test_this_environment_was_installed_from_the_lock():
    drift = {}
    for name, ver in applicable().items():
        try:
            installed = version(name)
        except PackageNotFoundError:
            installed = None
        if installed != ver:
            drift[name] = (ver, installed)
    assert drift == {}, "run: bash scripts/setup.sh"


def test_ci_and_setup_install_from_the_lock():
    setup = (REPO / "scripts" / "setup.sh").read_text()
    assert "pip install -q --require-hashes -r requirements.lock" in setup
    assert "pip install -q --no-deps -e ." in setup
    assert "scripts/setup.sh" in (REPO / "scripts" / "test.sh").read_text()
    assert "scripts/test.sh" in (REPO / ".ci" / "run").read_text()
