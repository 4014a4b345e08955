"""The plugin manager: broken plugins are logged by name and never stop the caller."""

import importlib.metadata

import pytest
import trio
from structlog.testing import capture_logs

from daemon import hookimpl
from daemon.plugins import hookspecs
from daemon.plugins.manager import call_async_hook, call_hook, make_plugin_manager


class Raising:
    @hookimpl
    def postroom_classify(self, message, classification, account):
        raise RuntimeError("classify exploded")

    @hookimpl
    def postroom_message_imported(self, event):
        raise RuntimeError("imported exploded")


class Answering:
    @hookimpl
    def postroom_classify(self, message):
        return "verdict"

    @hookimpl
    def postroom_message_imported(self, event):
        async def later():
            await trio.sleep(0)
            return f"seen {event}"
        return later()


class Slow:
    @hookimpl
    def postroom_message_imported(self, event):
        return trio.sleep_forever()


def manager(*plugins):
    pm = make_plugin_manager(load_entry_points=False)
    for i, plugin in enumerate(plugins):
        pm.register(plugin, name=f"{type(plugin).__name__.lower()}{i}")
    return pm


def test_raising_plugin_is_logged_and_skipped():
    pm = manager(Answering(), Raising())
    with capture_logs() as logs:
        result = call_hook(pm, "postroom_classify", message="m", classification="c",
                           account="a")
    assert result == "verdict"
    (failure,) = [e for e in logs if e["event"] == "plugin.hook_failed"]
    assert failure["plugin"] == "raising1"
    assert "classify exploded" in failure["error"]


def test_firstresult_none_when_nobody_answers():
    assert call_hook(manager(Raising()), "postroom_classify", message="m",
                     classification="c", account="a") is None


async def test_async_results_are_awaited_and_failures_isolated():
    pm = manager(Raising(), Answering())
    with capture_logs() as logs:
        results = await call_async_hook(pm, "postroom_message_imported", event=7)
    assert results == ["seen 7"]
    assert [e["plugin"] for e in logs if e["event"] == "plugin.hook_failed"] == ["raising0"]


async def test_slow_async_hook_times_out(autojump_clock):
    pm = manager(Slow())
    with capture_logs() as logs:
        results = await call_async_hook(pm, "postroom_message_imported", event=1,
                                        timeout=5)
    assert results == []
    assert any(e["event"] == "plugin.hook_timeout" and e["plugin"] == "slow0" for e in logs)


class _EntryPoint:
    def __init__(self, name, load):
        self.name, self._load = name, load

    def load(self):
        return self._load()


def _broken():
    raise ImportError("No module named 'missing_dependency'")


def test_entry_point_that_fails_to_import_is_logged_and_others_load(monkeypatch):
    good = Answering()
    eps = [_EntryPoint("broken", _broken), _EntryPoint("good", lambda: good)]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: eps)
    with capture_logs() as logs:
        pm = make_plugin_manager()
    assert pm.get_plugin("good") is good
    assert pm.get_plugin("broken") is None
    (failure,) = [e for e in logs if e["event"] == "plugin.load_failed"]
    assert failure["plugin"] == "broken"
    assert "missing_dependency" in failure["error"]


def test_disabled_plugins_are_not_loaded(monkeypatch):
    eps = [_EntryPoint("good", Answering)]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: eps)
    pm = make_plugin_manager(disabled=["good"])
    assert pm.get_plugin("good") is None


def test_the_installed_whitelist_entry_point_loads():
    pm = make_plugin_manager()
    assert pm.get_plugin("whitelist") is not None


@pytest.fixture
def autojump_clock():
    return trio.testing.MockClock(autojump_threshold=0)


def test_every_hookspec_has_a_contract_docstring():
    for name in dir(hookspecs):
        if name.startswith("postroom_"):
            doc = getattr(hookspecs, name).__doc__
            assert doc and ":returns:" in doc and "versionadded" in doc, name
