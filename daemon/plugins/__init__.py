"""Plugin support: the hookimpl marker, hookspecs and the tolerant plugin manager."""

from daemon.plugins.hookspecs import MAY_AWAIT, PROJECT_NAME, hookimpl
from daemon.plugins.manager import (
    PluginManager,
    call_async_hook,
    call_hook,
    configure_plugins,
    make_plugin_manager,
)

__all__ = ["MAY_AWAIT", "PROJECT_NAME", "PluginManager", "call_async_hook", "call_hook",
           "configure_plugins", "hookimpl", "make_plugin_manager"]
