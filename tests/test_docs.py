"""Docs stay complete: every hook documented with its exact signature; the public API."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import daemon
from daemon.plugins import hookspecs

DOCS = Path(__file__).resolve().parents[1] / "docs"


def hook_names() -> list[str]:
    return [n for n in dir(hookspecs) if n.startswith("postroom_")]


def test_every_hook_has_a_section_titled_with_its_signature():
    text = (DOCS / "plugin_hooks.md").read_text()
    for name in hook_names():
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"## `{name}({params})`" in text, name


def test_no_section_documents_a_hook_that_does_not_exist():
    text = (DOCS / "plugin_hooks.md").read_text()
    documented = {line.split("`")[1].split("(")[0] for line in text.splitlines()
                  if line.startswith("## `")}
    assert documented == set(hook_names())


def test_public_surface_of_the_package():
    assert sorted(daemon.__all__) == sorted([
        "ActionContext", "Address", "Attachment", "AuthError", "BounceInfo", "Candidate",
        "Classification", "ConfigError", "MessageImported", "MessageKind", "Outcome",
        "OutcomeStatus", "ParsedMessage", "PermanentError", "PostroomError", "RawMessage",
        "TransientError", "hookimpl"])
    for name in daemon.__all__:
        assert getattr(daemon, name) is not None


# -- the layout: docs/architecture.md's concept map and daemon/__init__.py ---------------

ROOT = DOCS.parent


def test_every_file_the_architecture_page_names_exists():
    text = (DOCS / "architecture.md").read_text()
    named = set(re.findall(r"`(daemon/[\w/]+\.py)`", text))
    assert named, "the concept map names no module"
    assert sorted(p for p in named if not (ROOT / p).is_file()) == []


def test_the_package_docstring_lists_every_subpackage_and_only_real_modules():
    layout = daemon.__doc__.split("::", 1)[1]
    listed = set(re.findall(r"^ {6}(\w+/?)(?:\.py)? ", layout, re.M))
    packages = {f"{p.name}/" for p in (ROOT / "daemon").iterdir()
                if p.is_dir() and ((p / "__init__.py").exists() or p.name == "templates")}
    assert packages - listed == set(), "subpackages missing from daemon/__init__.py"
    modules = {m for m in listed if not m.endswith("/")}
    assert sorted(m for m in modules if not (ROOT / "daemon" / f"{m}.py").is_file()) == []
