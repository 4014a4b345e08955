"""Building the plugin manager and calling hooks so that a broken plugin hurts no one.

pluggy's ``load_setuptools_entrypoints`` stops at the first plugin that fails to import,
and a hook implementation that raises aborts the whole hook call. Neither is acceptable in
a mail daemon, so postroom calls every hook through one path, :func:`_call_each`, which
asks each implementation on its own, logs ``plugin.hook_failed`` with the plugin's name
when one raises, and carries on as if it had returned None. On top of it:

* :func:`call_hook`: synchronous hooks. The first non-None result of a ``firstresult``
  hook (later implementations are not called), or the list of non-None results.
* :func:`call_async_hook`: hooks whose implementations may return awaitables
  (:data:`daemon.plugins.hookspecs.MAY_AWAIT`). For a ``firstresult`` hook each result is
  awaited before the next implementation is asked, and None moves on to the next one
  (as pytest does for ``pytest_fixture_setup``); otherwise all awaitables run at once.
* :func:`configure_plugins`: ``postroom_configure`` through the same path, each plugin
  given its own ``[plugins.<name>]`` table.

Call order is pluggy's (``_multicall`` walks the implementations in reverse): the plugin
registered last is asked first; ``tryfirst`` / ``trylast`` move an implementation to the
front / back of that order.

Hook wrappers (``hookimpl(wrapper=True)`` or ``hookwrapper=True``) are refused when a
plugin is registered (:class:`PluginManager`): they only make sense inside pluggy's own
call loop, which stops at the first exception, and calling one as a plain function would
return its generator as if it were an answer.

:func:`make_plugin_manager` loads each entry point of the group ``postroom.plugins`` on its
own, logs ``plugin.load_failed`` with its name on error (a plugin with a wrapper included),
and carries on; names in ``disabled`` are blocked before loading.
"""

from __future__ import annotations

__all__ = ["HOOK_TIMEOUT", "PluginManager", "call_async_hook", "call_hook",
           "configure_plugins", "make_plugin_manager"]

import importlib
import importlib.metadata
import inspect
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import pluggy
import structlog
import trio

from daemon.plugins import hookspecs

if TYPE_CHECKING:
    from daemon.config import Config

log = structlog.get_logger("postroom.plugins")

ENTRY_POINT_GROUP = "postroom.plugins"
HOOK_TIMEOUT = 10.0

#: Arguments that differ per plugin: ``plugin name -> {argument: value}``.
PerPlugin = Callable[[str], Mapping[str, Any]]


class PluginManager(pluggy.PluginManager):
    """pluggy's manager with postroom's hookspecs, refusing hook wrappers.

    postroom calls implementations one by one (see the module docstring), so a wrapper
    would never wrap anything; it is refused before the plugin is registered.
    """

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)

    def register(self, plugin: Any, name: str | None = None) -> str | None:
        """Register ``plugin`` like pluggy does.

        Raises:
            ValueError: a hook implementation of ``plugin`` is a wrapper; nothing of the
                plugin is registered.
        """
        wrappers = [attr for attr in dir(plugin)
                    if _is_wrapper(self.parse_hookimpl_opts(plugin, attr))]
        if wrappers:
            raise ValueError(
                f"plugin {name or self.get_canonical_name(plugin)!r}: "
                f"{', '.join(wrappers)} is a hook wrapper (wrapper=True or hookwrapper=True); "
                "postroom calls each implementation on its own and does not support "
                "wrappers: use a plain @hookimpl (tryfirst/trylast to choose the order)")
        return super().register(plugin, name)


def _is_wrapper(opts: Mapping[str, Any] | None) -> bool:
    return bool(opts and (opts.get("wrapper") or opts.get("hookwrapper")))


def make_plugin_manager(*, load_entry_points: bool = True, modules: Iterable[str] = (),
                        disabled: Iterable[str] = ()) -> PluginManager:
    """A plugin manager with our hookspecs and the installed plugins.

    Args:
        load_entry_points: load the entry-point group ``postroom.plugins``.
        modules: extra plugins by import path, ``module`` or ``module:object``
            (``[daemon] plugins``).
        disabled: plugin names (entry-point names or module paths) not to load.

    Returns:
        The manager. Plugins that fail to import or register are logged and left out.
    """
    pm = PluginManager()
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
        if pm.is_registered(plugin):  # an entry point already loaded the same module
            log.info("plugin.already_loaded", plugin=name,
                     registered_as=pm.get_name(plugin))
            return
        pm.register(plugin, name=name)
    except Exception as exc:
        log.error("plugin.load_failed", plugin=name, error=f"{type(exc).__name__}: {exc}")
    else:
        log.info("plugin.loaded", plugin=name)


# -- the one calling path -------------------------------------------------------------


def _call_each(pm: pluggy.PluginManager, name: str, kwargs: Mapping[str, Any],
               per_plugin: PerPlugin | None = None) -> Iterator[tuple[str, Any]]:
    """``(plugin name, result)`` for each implementation, lazily, in pluggy's call order.

    Each implementation gets only the arguments it declares (``kwargs``, plus
    ``per_plugin(plugin name)`` when given); one that raises is logged with the plugin's
    name and skipped. Lazy: an implementation is called only when the caller asks for
    the next result, so a ``firstresult`` caller that stops asks no one more.
    """
    for impl in reversed(getattr(pm.hook, name).get_hookimpls()):
        given = {**kwargs, **per_plugin(impl.plugin_name)} if per_plugin else kwargs
        args = {arg: given[arg] for arg in impl.argnames if arg in given}
        try:
            result = impl.function(**args)
        except Exception as exc:
            _log_failure(impl.plugin_name, name, exc)
            continue
        yield impl.plugin_name, result


def _log_failure(plugin: str, hook: str, exc: BaseException) -> None:
    log.error("plugin.hook_failed", plugin=plugin, hook=hook,
              error=f"{type(exc).__name__}: {exc}")


def _is_firstresult(pm: pluggy.PluginManager, name: str) -> bool:
    caller = getattr(pm.hook, name)
    return bool(caller.spec and caller.spec.opts.get("firstresult"))


def call_hook(pm: pluggy.PluginManager, name: str, *, per_plugin: PerPlugin | None = None,
              **kwargs: Any) -> Any:
    """Call the synchronous hook ``name`` implementation by implementation.

    An implementation that returns an awaitable from a synchronous hook is a bug in
    that plugin: the awaitable is closed, ``plugin.hook_failed`` logged, and the result
    counts as None.

    Args:
        per_plugin: arguments that differ per plugin (see :func:`configure_plugins`).
        kwargs: the hook's arguments.

    Returns:
        For a ``firstresult`` hook the first non-None result (or None); otherwise the list
        of non-None results.

    Raises:
        TypeError: ``name`` may return awaitables; use :func:`call_async_hook`.
    """
    if name in hookspecs.MAY_AWAIT:
        raise TypeError(f"{name} may return awaitables: call it with call_async_hook")
    firstresult = _is_firstresult(pm, name)
    results = []
    for plugin, result in _call_each(pm, name, kwargs, per_plugin):
        if inspect.isawaitable(result):
            _close(result)
            _log_failure(plugin, name, TypeError("returned an awaitable from a "
                                                 "synchronous hook"))
            continue
        if result is None:
            continue
        if firstresult:
            return result
        results.append(result)
    return None if firstresult else results


def _close(awaitable: object) -> None:
    """Close a coroutine nobody will await (no "never awaited" warning)."""
    close = getattr(awaitable, "close", None)
    if close is not None:
        close()


async def call_async_hook(pm: pluggy.PluginManager, name: str, *,
                          timeout: float = HOOK_TIMEOUT, **kwargs: Any) -> Any:
    """Call a hook whose implementations may return awaitables, and await them.

    Each awaitable runs under ``timeout``; one that raises or times out is logged with
    the plugin's name (``plugin.hook_failed`` / ``plugin.hook_timeout``) and counts as
    None. A checkpoint; on cancellation the awaitables still running are cancelled and
    implementations not yet asked are not called.

    Returns:
        For a ``firstresult`` hook the first non-None result, each implementation asked
        in turn and its awaitable awaited before the next is asked (or None); otherwise
        the non-None results, the awaitables run concurrently.
    """
    if _is_firstresult(pm, name):
        return await _first_result(pm, name, timeout, kwargs)
    return await _all_results(pm, name, timeout, kwargs)


async def _first_result(pm: pluggy.PluginManager, name: str, timeout: float,
                        kwargs: Mapping[str, Any]) -> Any:
    for plugin, result in _call_each(pm, name, kwargs):
        if inspect.isawaitable(result):
            result = await _await(plugin, name, result, timeout)
        if result is not None:
            return result
    return None


async def _all_results(pm: pluggy.PluginManager, name: str, timeout: float,
                       kwargs: Mapping[str, Any]) -> list[Any]:
    pending: list[tuple[str, Awaitable[Any]]] = []
    done: list[Any] = []
    for plugin, result in _call_each(pm, name, kwargs):
        if inspect.isawaitable(result):
            pending.append((plugin, result))
        elif result is not None:
            done.append(result)

    async def run_one(plugin: str, awaitable: Awaitable[Any]) -> None:
        value = await _await(plugin, name, awaitable, timeout)
        if value is not None:
            done.append(value)

    if pending:
        async with trio.open_nursery() as nursery:
            for plugin, awaitable in pending:
                nursery.start_soon(run_one, plugin, awaitable)
    return done


async def _await(plugin: str, hook: str, awaitable: Awaitable[Any], timeout: float) -> Any:
    """The awaitable's value; None (logged) when it raises or exceeds ``timeout``."""
    with trio.move_on_after(timeout) as scope:
        try:
            return await awaitable
        except Exception as exc:
            _log_failure(plugin, hook, exc)
            return None
    if scope.cancelled_caught:
        log.error("plugin.hook_timeout", plugin=plugin, hook=hook, timeout=timeout)
    return None


def configure_plugins(pm: pluggy.PluginManager, config: Config) -> None:
    """Call ``postroom_configure``, each plugin with its own ``[plugins.<name>]`` table.

    ``<name>`` is the name the plugin was registered under (its entry-point name or
    module path); a plugin without a table gets ``{}``. Failures are logged like any
    hook's; the plugin stays registered.
    """
    def settings(plugin: str) -> Mapping[str, Any]:
        return {"settings": config.plugins.get(plugin, {})}

    call_hook(pm, "postroom_configure", per_plugin=settings, config=config)
