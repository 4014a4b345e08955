"""docs/config.md and config/postroom.example.toml name every key the models accept."""

import re

import pytest
from pydantic import BaseModel

from daemon.config import (
    Account,
    AutoReply,
    ClosedParent,
    CrmNames,
    DaemonSettings,
    HttpSettings,
    ImapConnection,
    OAuthApp,
)
from daemon.config.problems import config_keys
from daemon.config.runtime import RuntimeConfig
from tests.config.conftest import ROOT

SECTIONS: dict[str, type[BaseModel]] = {
    "[daemon]": DaemonSettings,
    "[http]": HttpSettings,
    "[[oauth_apps]]": OAuthApp,
    "[[imap_connections]]": ImapConnection,
    "[[accounts]]": Account,
    "auto_reply": AutoReply,
    "closed_parent": ClosedParent,
    "[crm]": CrmNames,
}


def _doc_sections() -> dict[str, str]:
    text = (ROOT / "docs" / "config.md").read_text()
    parts = re.split(r"^## ", text, flags=re.MULTILINE)
    return {part.split("\n", 1)[0].strip().strip("`"): part for part in parts[1:]}


@pytest.mark.parametrize("heading", SECTIONS)
def test_every_toml_key_is_documented(heading):
    section = _doc_sections()[heading]
    missing = [key for key in config_keys(SECTIONS[heading])
               if f"### `{key}`" not in section]
    assert missing == []


def test_every_runtime_key_is_documented():
    section = _doc_sections()["The runtime configuration JSON"]
    missing = []
    for model in _runtime_models(RuntimeConfig):
        missing += [key for key in config_keys(model) if f"`{key}`" not in section]
    assert missing == []


def _runtime_models(model: type[BaseModel]) -> list[type[BaseModel]]:
    from daemon.config.problems import _as_model, _element_type

    found = [model]
    for field in model.model_fields.values():
        inner = _as_model(field.annotation) or _as_model(_element_type(field.annotation))
        if inner is not None and inner not in found:
            found += [m for m in _runtime_models(inner) if m not in found]
    return found


@pytest.mark.parametrize("heading", SECTIONS)
def test_example_toml_mentions_every_key(heading):
    text = (ROOT / "config" / "postroom.example.toml").read_text()
    missing = [key for key in config_keys(SECTIONS[heading])
               if not re.search(rf"^\s*#?\s*{key}\s*=|[{{,]\s*{key}\s*=", text, re.MULTILINE)]
    assert missing == []


# -- issue 14: and the other way round: every documented key exists ----------------------

@pytest.mark.parametrize("heading", SECTIONS)
def test_every_documented_toml_key_exists(heading):
    section = _doc_sections()[heading]
    documented = re.findall(r"^### `([^`]+)`", section, flags=re.MULTILINE)
    assert documented, heading
    assert [key for key in documented if key not in config_keys(SECTIONS[heading])] == []


def test_every_documented_toml_section_exists():
    from daemon.config.load import _SECTIONS

    documented = [h for h in _doc_sections() if h.startswith("`[") or h.startswith("[")]
    tables = {f"[{s}]" for s in _SECTIONS} | {f"[[{s}]]" for s in _SECTIONS}
    assert [h for h in documented if h.split(".")[0].rstrip("]") + "]" not in tables
            and h not in tables] == []


def test_every_documented_runtime_key_exists():
    section = _doc_sections()["The runtime configuration JSON"]
    models = _runtime_models(RuntimeConfig)
    known = {key for model in models for key in config_keys(model)}
    first_columns = re.findall(r"^\| `([A-Za-z]+)`", section, flags=re.MULTILINE)
    assert "relationDocument" in first_columns
    objects = section.split("### The objects postroom writes")[1].split("###")[0]
    per_section = {}
    for name, keys in re.findall(r"^\| `(\w+)` \| (.*) \|$", objects, flags=re.MULTILINE):
        per_section[name] = re.findall(r"`(\w+)` \(`", keys)
    assert len(per_section) == 8
    by_name = {"conversation": "conversation", "conversationMessage": "conversation_message",
               "follower": "follower", "messageFollower": "message_follower",
               "document": "document", "embeddedFile": "embedded_file",
               "textSnippet": "text_snippet",
               "conversationMessageError": "conversation_message_error"}
    unknown = [key for key in first_columns if key not in known]
    for name, keys in per_section.items():
        model = type(getattr(RuntimeConfig(), by_name[name]))
        unknown += [f"{name}.{key}" for key in keys if key not in config_keys(model)]
    assert unknown == []
