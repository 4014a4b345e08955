"""The contrib message action ``limepkg_standard_actions.update-limeobject``."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from daemon import ActionContext
from daemon.plugins.manager import call_async_hook, make_plugin_manager
from plugins_contrib import update_limeobject
from plugins_contrib.update_limeobject import ACTION_ID, properties_from

REPO = Path(__file__).resolve().parents[2]


def context(changes: list[dict[str, Any]]) -> ActionContext:
    async def update_parent(props: dict[str, Any]) -> None:
        changes.append(props)

    return ActionContext(account="support", conversation_id=1, conversation_message_id=2,
                         parent_limetype="helpdesk", parent_id=3, update_parent=update_parent)


def test_constants_and_plain_values_become_properties():
    assert properties_from({"limeObject": {"helpdeskstatus": {"constant": "waiting_customer"},
                                           "priority": 2},
                            "confirm": {"options": {}}}) == {
        "helpdeskstatus": "waiting_customer", "priority": 2}


@pytest.mark.parametrize("params", [{}, {"limeObject": {}}, {"limeObject": "x"},
                                    {"limeObject": {"status": {"value": 1}}}])
def test_malformed_params_are_refused(params):
    with pytest.raises(ValueError, match="limeObject"):
        properties_from(params)


async def test_the_hook_updates_the_parent_and_ignores_other_actions():
    pm = make_plugin_manager(load_entry_points=False,
                             modules=["plugins_contrib.update_limeobject"])
    changes: list[dict[str, Any]] = []
    assert await call_async_hook(pm, "postroom_message_action", action_id="other.thing",
                                 params={}, context=context(changes)) is None
    result = await call_async_hook(
        pm, "postroom_message_action", action_id=ACTION_ID,
        params={"limeObject": {"helpdeskstatus": {"constant": "closed"}}},
        context=context(changes))
    assert result is True
    assert changes == [{"helpdeskstatus": "closed"}]


def test_the_entry_point_names_the_module():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    entry = project["project"]["entry-points"]["postroom.plugins"]["update_limeobject"]
    assert entry == update_limeobject.__name__
