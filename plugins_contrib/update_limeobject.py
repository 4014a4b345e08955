"""``limepkg_standard_actions.update-limeobject``: set properties on the parent after a send.

The reference's "Update Ticket Status to Waiting on Customer" message action: a
conversation parent offers it in ``sendMessageActions``, and when an agent chooses it the
parent (the ticket) gets the properties of ``params.limeObject``::

    "sendMessageActions": [{
        "action": {
            "id": "limepkg_standard_actions.update-limeobject",
            "params": {"limeObject": {"helpdeskstatus": {"constant": "waiting_customer"}}}
        },
        "label": "Send and set status to waiting on customer",
        "icon": "waiting_room"
    }]

The module is the plugin: the entry point ``postroom.plugins: update_limeobject`` and
``[daemon] plugins = ["plugins_contrib.update_limeobject"]`` both load it.

Each entry of ``limeObject`` maps a property to ``{"constant": value}`` (the value as
written) or, for convenience, directly to a JSON value. Other keys of ``params``
(``confirm``, ``nextCommand``) belong to the CRM's user interface and are ignored here.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping
from typing import Any

from daemon import ActionContext, hookimpl

ACTION_ID = "limepkg_standard_actions.update-limeobject"


def properties_from(params: Mapping[str, Any]) -> dict[str, Any]:
    """The properties ``params.limeObject`` asks for.

    Raises:
        ValueError: ``limeObject`` is missing or not an object, or an entry is an object
            without ``constant``.
    """
    lime_object = params.get("limeObject")
    if not isinstance(lime_object, Mapping) or not lime_object:
        raise ValueError(f"{ACTION_ID}: params.limeObject must be a non-empty object")
    props = {}
    for name, spec in lime_object.items():
        if isinstance(spec, Mapping):
            if "constant" not in spec:
                raise ValueError(f"{ACTION_ID}: params.limeObject.{name} needs a "
                                 '"constant"')
            props[name] = spec["constant"]
        else:
            props[name] = spec
    return props


@hookimpl
def postroom_message_actions() -> list[str]:
    """The one action id this plugin handles."""
    return [ACTION_ID]


@hookimpl
def postroom_message_action(action_id: str, params: Mapping[str, Any],
                            context: ActionContext) -> Awaitable[bool] | None:
    """Handle ``update-limeobject``; None (not ours) for every other action id."""
    if action_id != ACTION_ID:
        return None
    props = properties_from(params)

    async def run() -> bool:
        await context.update_parent(props)
        return True

    return run()
