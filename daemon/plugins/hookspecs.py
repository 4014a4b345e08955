"""The hooks postroom calls, in the order a message meets them.

Every hook is synchronous as pluggy calls it. Where a hook says "may return an awaitable"
(:data:`MAY_AWAIT`), the caller runs that awaitable in the daemon's Trio task under a
timeout (:func:`daemon.plugins.manager.call_async_hook`), so a slow or broken plugin cannot
stall an actor. An exception raised inside any hook is caught, logged as
``plugin.hook_failed`` with the plugin's name, and treated as if that plugin had returned
``None``: a broken plugin never stops an import.

Plugins are asked in pluggy's call order: the plugin registered last first (``tryfirst`` /
``trylast`` move an implementation to the front / back). Hook wrappers
(``hookimpl(wrapper=True)``, ``hookwrapper=True``) are refused when the plugin is registered.

Implement hooks with :data:`hookimpl` (``from daemon import hookimpl``); implementations may
accept any subset of the documented arguments.
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from quart import Blueprint

    from daemon.config import Account, Config
    from daemon.mail.model import Classification, ParsedMessage
    from daemon.plugins.events import ActionContext, Candidate, MessageImported

PROJECT_NAME = "postroom"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# -------------------------------------------------------------------------------------
# Startup
# -------------------------------------------------------------------------------------


@hookspec
def postroom_configure(config: Config, settings: Mapping[str, Any]) -> None:
    """Called once at startup, after the configuration is loaded, before any actor starts.

    :param config: the whole frozen configuration.
    :param settings: this plugin's own table, ``[plugins.<name>]`` from the TOML file
        (empty when absent). Each plugin receives only its own table.
    :returns: ignored.

    Called once, after every plugin is registered, in the main Trio task. An exception is
    logged with the plugin's name; the plugin stays registered.

    .. versionadded:: 0.1
    """


@hookspec
def postroom_http_blueprints() -> Iterable[Blueprint] | None:
    """Called once while the HTTP app is built. Return Quart blueprints to mount.

    :returns: an iterable of ``quart.Blueprint``, or None. Collected from every plugin.

    Routes run in the HTTP server's Trio tasks; they should answer quickly.

    .. versionadded:: 0.1
    """


# -------------------------------------------------------------------------------------
# Classify: after parsing, before anything is stored
# -------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def postroom_classify(message: ParsedMessage, classification: Classification,
                      account: Account) -> Classification | None:
    """Override the built-in classification of a message (normal/automatic/bounce/own).

    :param message: the parsed message.
    :param classification: the built-in verdict, with the rules that fired.
    :param account: the account it arrived at.
    :returns: a replacement :class:`~daemon.mail.model.Classification`, or None to keep
        the built-in one. ``firstresult``: stops at the first non-None result.

    Called in the processor's Trio task after parsing and the built-in classifier, before
    :func:`postroom_allow_sender`. Must be synchronous.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def postroom_allow_sender(message: ParsedMessage, classification: Classification,
                          account: Account) -> bool | None:
    """Decide whether an automatic message may create a new conversation parent.

    Only called for automatic messages (not bounces, not our own mail) that match no
    existing conversation. The runtime setting ``allowAutomaticEmails`` is the default:
    return True to let this sender create a parent even when it is false (a whitelist),
    False to discard it even when it is true, None for no opinion.

    :returns: True, False or None. ``firstresult``: stops at the first non-None result.

    Called in the processor's Trio task, after :func:`postroom_classify`. Synchronous.

    .. versionadded:: 0.1
    """


# -------------------------------------------------------------------------------------
# Identify: which conversation does the message belong to?
# -------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def postroom_identify_conversation(message: ParsedMessage,
                                   candidates: list[Candidate]) -> int | None:
    """Choose the conversation a message joins.

    :param message: the parsed message.
    :param candidates: conversations the built-in identification found, best first, each
        with the method that found it (``signed-id``, ``body-marker``, ``references``,
        ``subject-tag``). Empty when none matched.
    :returns: a conversation id to join, ``0`` to force a new conversation, or None to
        accept the built-in choice (the first candidate, or a new conversation).
        ``firstresult``.

    Called inside the store transaction, in the store's worker thread; it must not block
    for long and must not call back into the store.

    .. versionadded:: 0.1
    """


# -------------------------------------------------------------------------------------
# Persist: building the CRM objects
# -------------------------------------------------------------------------------------


@hookspec
def postroom_conversation_parent_properties(message: ParsedMessage, limetype: str,
                                            properties: MutableMapping[str, Any]) -> None:
    """Add or change the properties of a new conversation parent before it is created.

    :param message: the parsed message that starts the conversation.
    :param limetype: the parent's limetype (``helpdesk`` by default).
    :param properties: the mapped properties (runtime configuration ``properties``);
        change it in place.
    :returns: ignored. Every plugin is called, in pluggy's call order (the last
        registered first).

    Called inside the store transaction, in the store's worker thread, only when a new
    parent is created.

    .. versionadded:: 0.1
    """


@hookspec
def postroom_message_imported(event: MessageImported) -> Awaitable[None] | None:
    """Called after a message's objects are committed (not for duplicates or failures).

    :param event: ids of the conversation, message, parent and followers, the account,
        the classification and whether a new conversation was started.
    :returns: None, or an awaitable the processor runs under a timeout. Collected.

    Called in the processor's Trio task after the commit and after the outcome was sent
    back to the intake, so a slow plugin does not hold up the mailbox.

    .. versionadded:: 0.1
    """


# -------------------------------------------------------------------------------------
# Outbox: after sending
# -------------------------------------------------------------------------------------


@hookspec
def postroom_message_actions() -> Iterable[str] | None:
    """Declare the ``sendMessageActions`` ids this plugin handles.

    :returns: the action ids (e.g. ``["limepkg_standard_actions.update-limeobject"]``), or
        None for none. Collected: the ids of every plugin are joined.

    Called synchronously by ``postroom check-config`` (which warns about a configured
    action id nobody declares) and by the send API before ``postroom_message_action``
    (whose answer then names an undeclared id instead of a silent ``handled: false``). An
    exception counts as declaring nothing.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def postroom_message_action(action_id: str, params: Mapping[str, Any],
                            context: ActionContext) -> Awaitable[bool] | bool | None:
    """Run a ``sendMessageActions`` entry after an agent's message was queued.

    :param action_id: the action's ``id``, e.g. ``limepkg_standard_actions.update-limeobject``.
    :param params: the action's ``params`` from the runtime configuration.
    :param context: the conversation, parent (limetype and id), message and a handle to the
        store for the change.
    :returns: True (or an awaitable of True) when this plugin handled the action, None (or
        an awaitable of None) when it does not know the id. ``firstresult``: each plugin's
        awaitable is awaited before the next plugin is asked; the first non-None value wins.
        An exception or a timeout counts as None.

    Called in the HTTP request's Trio task after the message was queued.

    .. versionadded:: 0.1
    """


# -------------------------------------------------------------------------------------
# Shutdown
# -------------------------------------------------------------------------------------


@hookspec
def postroom_shutdown() -> Awaitable[None] | None:
    """Called once when the daemon stops, after intake has stopped.

    :returns: None or an awaitable, run under the shutdown grace period. Collected.

    .. versionadded:: 0.1
    """


#: The hooks whose implementations may return an awaitable; postroom calls them with
#: :func:`daemon.plugins.manager.call_async_hook`, the others with ``call_hook``.
MAY_AWAIT = frozenset({"postroom_message_imported", "postroom_message_action",
                       "postroom_shutdown"})
