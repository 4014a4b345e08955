"""Building the plugin manager and calling hooks so that a broken plugin hurts no one.

pluggy's ``load_setuptools_entrypoints`` stops at the first plugin that fails to import,
and a hook implementation that raises aborts the whole hook call. Neither is acceptable in
a mail daemon, so:

* :func:`make_plugin_manager` loads each entry point of the group ``postroom.plugins`` on
  its own, logs ``plugin.load_failed`` with its name on error, and carries on; names in
  ``disabled`` are blocked before loading.
* :func:`call_hook` calls each implementation separately (pluggy's own order: last
  registered first), logs ``plugin.hook_failed`` with the plugin's name when one raises,
  and returns the collected results (or the first non-None for ``firstresult`` hooks).
* :func:`call_async_hook` does the same, then awaits every awaitable result in a nursery,
  each under its own timeout.
"""

from __future__ import annotations

__all__ = ["call_async_hook", "call_hook", "make_plugin_manager"]

import importlib
import importlib.metadata
import inspect
from collections.abc import Iterable, Iterator
from typing import Any

import pluggy
import structlog
import trio

from daemon.plugins import hookspecs

log = structlog.get_logger("postroom.plugins")

ENTRY_POINT_GROUP = "postroom.plugins"
HOOK_TIMEOUT = 10.0


def make_plugin_manager(*, load_entry_points: bool = True, modules: Iterable[str] = (),
                        disabled: Iterable[str] = ()) -> pluggy.PluginManager:
    """A plugin manager with our hookspecs and the installed plugins.

    Args:
        load_entry_points: load the entry-point group ``postroom.plugins``.
        modules: extra plugins by import path, ``module`` or ``module:object``
            (``[daemon] plugins``).
        disabled: plugin names (entry-point names or module paths) not to load.

    Returns:
        The manager. Plugins that fail to import are logged and left out.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name in disabled:
        pm.set_blocked(name)
    if load_entry_points:
        for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
            _register(pm, ep.name, ep.load)
    for path in modules:
        _register(pm, path, lambda path=path: _import_object(path))
    return pm


def _import_object(path: str) -> Any:
    """``package.module`` or ``package.module:attribute``, as entry points are written."""
    module_name, _, attribute = path.partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attribute) if attribute else module


def _register(pm: pluggy.PluginManager, name: str, load: Any) -> None:
    if pm.is_blocked(name) or pm.has_plugin(name):
        return
    try:
        plugin = load()
        pm.register(plugin, name=name)
    except Exception as exc:
        log.error("plugin.load_failed", plugin=name, error=f"{type(exc).__name__}: {exc}")
    else:
        log.info("plugin.loaded", plugin=name)


def call_hook(pm: pluggy.PluginManager, name: str, **kwargs: Any) -> Any:
    """Call hook ``name`` implementation by implementation, isolating failures.

    Returns:
        For a ``firstresult`` hook the first non-None result (or None); otherwise the list
        of non-None results. A raising implementation is logged and skipped.
    """
    caller = getattr(pm.hook, name)
    firstresult = bool(caller.spec and caller.spec.opts.get("firstresult"))
    results = []
    for _, result in _call_each(pm, name, kwargs):
        if result is None:
            continue
        if firstresult:
            return result
        results.append(result)
    return None if firstresult else results


def _call_each(pm: pluggy.PluginManager, name: str, kwargs: dict[str, Any]
               ) -> Iterator[tuple[str, Any]]:
    """``(plugin name, result)`` for each implementation, in pluggy's order.

    Each gets only the arguments it declares; one that raises is logged with the plugin's
    name and skipped.
    """
    for impl in reversed(getattr(pm.hook, name).get_hookimpls()):
        args = {arg: kwargs[arg] for arg in impl.argnames if arg in kwargs}
        try:
            result = impl.function(**args)
        except Exception as exc:
            log.error("plugin.hook_failed", plugin=impl.plugin_name, hook=name,
                      error=f"{type(exc).__name__}: {exc}")
            continue
        yield impl.plugin_name, result


async def call_async_hook(pm: pluggy.PluginManager, name: str, *,
                          timeout: float = HOOK_TIMEOUT, **kwargs: Any) -> list[Any]:
    """Call a hook whose implementations may return awaitables; await them all.

    Each awaitable runs in its own task under ``timeout``; one that raises or times out
    is logged with the plugin's name. Is a checkpoint. Returns the non-None results.
    """
    pending: list[tuple[str, Any]] = []
    done: list[Any] = []
    for plugin, result in _call_each(pm, name, kwargs):
        if inspect.isawaitable(result):
            pending.append((plugin, result))
        elif result is not None:
            done.append(result)

    async def run_one(plugin: str, awaitable: Any) -> None:
        with trio.move_on_after(timeout) as scope:
            try:
                value = await awaitable
            except Exception as exc:
                log.error("plugin.hook_failed", plugin=plugin, hook=name,
                          error=f"{type(exc).__name__}: {exc}")
                return
            if value is not None:
                done.append(value)
        if scope.cancelled_caught:
            log.error("plugin.hook_timeout", plugin=plugin, hook=name, timeout=timeout)

    if pending:
        async with trio.open_nursery() as nursery:
            for plugin, awaitable in pending:
                nursery.start_soon(run_one, plugin, awaitable)
    return done
