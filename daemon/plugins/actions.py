"""Which ``sendMessageActions`` ids some plugin handles, and which nobody does.

A ``sendMessageActions`` entry names a command (``limepkg_basic_helpdesk.helpdesk-park``)
that some plugin must run through ``postroom_message_action``. An id nobody handles used
to show only as ``handled: false`` after the agent had pressed the button. Plugins
therefore declare their ids (``postroom_message_actions``); ``postroom check-config``
warns about every configured id that no loaded plugin declares, and the send API says so
in its answer.
"""

from __future__ import annotations

__all__ = ["handled_action_ids", "plugin_warnings", "unhandled_actions"]

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import pluggy
import structlog
import structlog.testing

from daemon.errors import ConfigProblem
from daemon.plugins.manager import call_hook, configure_plugins, make_plugin_manager

if TYPE_CHECKING:
    from daemon.config import Config


def handled_action_ids(pm: pluggy.PluginManager) -> frozenset[str]:
    """Every action id a registered plugin declares (a bare string counts as one id)."""
    ids: set[str] = set()
    for declared in call_hook(pm, "postroom_message_actions"):
        if isinstance(declared, str):
            ids.add(declared)
        elif isinstance(declared, Iterable):
            ids.update(str(i) for i in declared)
    return frozenset(ids)


def unhandled_actions(runtime: Any, handled: frozenset[str], *,
                      file: str) -> list[ConfigProblem]:
    """A warning for each ``sendMessageActions`` id in ``runtime`` not in ``handled``.

    Args:
        runtime: the runtime configuration.
        handled: :func:`handled_action_ids` of the loaded plugins.
        file: the runtime JSON's name, for the problems.
    """
    problems = []
    for p, parent in enumerate(runtime.conversation_parents):
        for a, entry in enumerate(parent.send_message_actions):
            if entry.action.id not in handled:
                problems.append(ConfigProblem(
                    file, f"conversationParents[{p}].sendMessageActions[{a}].action.id",
                    f'no loaded plugin handles "{entry.action.id}": the button "'
                    f'{entry.label}" would send the message and do nothing else'))
    return problems


def plugin_warnings(config: Config) -> list[ConfigProblem]:
    """Load ``config``'s plugins as ``run`` would and warn about every unhandled action.

    For ``postroom check-config`` (:func:`daemon.config.check_config`'s
    ``plugin_checks``), whose output is its verdict alone: what the plugin manager logs
    while loading is collected instead of printed, and a plugin that failed to load or to
    configure itself becomes a warning too.
    """
    with structlog.testing.capture_logs() as logs:
        pm = make_plugin_manager(modules=config.daemon.plugins,
                                 disabled=config.daemon.plugins_disabled)
        configure_plugins(pm, config)
        handled = handled_action_ids(pm)
    problems = [ConfigProblem(str(config.path.name), "daemon.plugins",
                              f"plugin {event.get('plugin')!r}: {event['event']}: "
                              f"{event.get('error', '')}".rstrip(": "))
                for event in logs if event.get("log_level") in ("error", "critical")]
    file = config.daemon.runtime.name if config.daemon.runtime else "runtime configuration"
    return problems + unhandled_actions(config.runtime, handled, file=file)
