"""Docs stay complete: every hook documented with its exact signature; the public API."""

from __future__ import annotations

import inspect
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
