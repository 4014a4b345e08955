"""Plugin support: the hookimpl marker, hookspecs and the tolerant plugin manager."""

from daemon.plugins.hookspecs import PROJECT_NAME, hookimpl
from daemon.plugins.manager import call_async_hook, call_hook, make_plugin_manager

__all__ = ["PROJECT_NAME", "call_async_hook", "call_hook", "hookimpl", "make_plugin_manager"]
