"""The plugin manager: broken plugins are logged by name and never stop the caller."""

import importlib.metadata
from types import SimpleNamespace

import pytest
import trio
from structlog.testing import capture_logs

from daemon import hookimpl
from daemon.plugins import hookspecs
from daemon.plugins.manager import (
    call_async_hook,
    call_hook,
    configure_plugins,
    make_plugin_manager,
)


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


# -- one calling path: order, async firstresult, wrappers, postroom_configure ----------


class Asked:
    """Records, in a shared list, which plugin was asked; answers only its own id."""

    def __init__(self, name, asked, knows=None, answer=True):
        self.name, self.asked, self.knows, self.answer = name, asked, knows, answer

    @hookimpl
    async def postroom_message_action(self, action_id, params, context):
        self.asked.append(self.name)
        await trio.sleep(0)
        return self.answer if action_id == self.knows else None


async def test_async_firstresult_awaits_each_and_moves_on_after_none():
    asked = []
    knowing = Asked("knowing", asked, knows="ours.update")
    unknowing = Asked("unknowing", asked, knows="theirs.other")
    pm = manager(knowing, unknowing)  # pluggy asks the last registered first
    result = await call_async_hook(pm, "postroom_message_action", action_id="ours.update",
                                   params={}, context=None)
    assert result is True
    assert asked == ["unknowing", "knowing"]


async def test_async_firstresult_stops_at_the_first_answer():
    asked = []
    pm = manager(Asked("early", asked, knows="x", answer="early"),
                 Asked("late", asked, knows="x", answer="late"))
    assert await call_async_hook(pm, "postroom_message_action", action_id="x", params={},
                                 context=None) == "late"
    assert asked == ["late"]  # the other implementation is never called


class RaisingAction:
    @hookimpl
    async def postroom_message_action(self, action_id):
        raise RuntimeError("action exploded")


async def test_async_firstresult_treats_a_raising_plugin_as_none():
    asked = []
    pm = manager(Asked("knowing", asked, knows="x"), RaisingAction())
    with capture_logs() as logs:
        result = await call_async_hook(pm, "postroom_message_action", action_id="x",
                                       params={}, context=None)
    assert result is True
    assert [e["plugin"] for e in logs if e["event"] == "plugin.hook_failed"] == [
        "raisingaction1"]


def test_call_hook_refuses_hooks_that_may_return_awaitables():
    with pytest.raises(TypeError, match="call_async_hook"):
        call_hook(manager(), "postroom_message_action", action_id="x", params={},
                  context=None)


class AsyncClassify:
    @hookimpl
    async def postroom_classify(self, message):
        return "never used"


def test_an_awaitable_from_a_synchronous_hook_is_logged_and_ignored():
    pm = manager(Answering(), AsyncClassify())
    with capture_logs() as logs:
        result = call_hook(pm, "postroom_classify", message="m", classification="c",
                           account="a")
    assert result == "verdict"
    (failure,) = [e for e in logs if e["event"] == "plugin.hook_failed"]
    assert failure["plugin"] == "asyncclassify1" and "awaitable" in failure["error"]


def test_may_await_lists_exactly_the_hooks_documented_to_return_awaitables():
    documented = {name for name in dir(hookspecs) if name.startswith("postroom_")
                  and "Awaitable" in getattr(hookspecs, name).__annotations__["return"]}
    assert documented == hookspecs.MAY_AWAIT


class First:
    @hookimpl
    def postroom_classify(self):
        return "first registered"


class Second:
    @hookimpl
    def postroom_classify(self):
        return "second registered"


class SecondTryLast:
    @hookimpl(trylast=True)
    def postroom_classify(self):
        return "second registered, trylast"


def test_call_order_is_pluggys_last_registered_first_and_trylast_last():
    assert call_hook(manager(First(), Second()), "postroom_classify") == "second registered"
    assert call_hook(manager(First(), SecondTryLast()),
                     "postroom_classify") == "first registered"


class NewWrapper:
    @hookimpl(wrapper=True)
    def postroom_classify(self):
        return (yield)


class OldWrapper:
    @hookimpl(hookwrapper=True)
    def postroom_message_imported(self, event):
        yield


@pytest.mark.parametrize("plugin", [NewWrapper(), OldWrapper()])
def test_hook_wrappers_are_refused_at_registration(plugin):
    pm = make_plugin_manager(load_entry_points=False)
    with pytest.raises(ValueError, match="hook wrapper"):
        pm.register(plugin, name="wrapping")
    assert pm.get_plugin("wrapping") is None
    assert not pm.hook.postroom_classify.get_hookimpls()
    assert not pm.hook.postroom_message_imported.get_hookimpls()


def test_a_plugin_with_a_wrapper_is_logged_and_left_out(monkeypatch):
    eps = [_EntryPoint("wrapping", NewWrapper), _EntryPoint("good", Answering)]
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: eps)
    with capture_logs() as logs:
        pm = make_plugin_manager()
    assert pm.get_plugin("wrapping") is None and pm.get_plugin("good") is not None
    (failure,) = [e for e in logs if e["event"] == "plugin.load_failed"]
    assert failure["plugin"] == "wrapping" and "hook wrapper" in failure["error"]


class Configured:
    def __init__(self):
        self.got = None

    @hookimpl
    def postroom_configure(self, settings):
        self.got = settings


class ConfiguredWithConfig:
    def __init__(self):
        self.got = None

    @hookimpl(tryfirst=True)
    def postroom_configure(self, config, settings):
        self.got = (config, settings)


class RaisingConfigure:
    @hookimpl
    def postroom_configure(self):
        raise RuntimeError("configure exploded")


def test_postroom_configure_goes_through_the_same_path():
    config = SimpleNamespace(plugins={"configured0": {"allow": ["a"]}})
    plain, both = Configured(), ConfiguredWithConfig()
    pm = manager(plain, both, RaisingConfigure())
    with capture_logs() as logs:
        configure_plugins(pm, config)
    assert plain.got == {"allow": ["a"]}  # its own table
    assert both.got == (config, {})  # no table: {}; only the declared arguments
    (failure,) = [e for e in logs if e["event"] == "plugin.hook_failed"]
    assert failure["plugin"] == "raisingconfigure2"
    assert failure["hook"] == "postroom_configure"
    assert pm.get_plugin("raisingconfigure2") is not None  # stays registered


def test_build_plugin_manager_configures_through_configure_plugins(monkeypatch):
    from daemon import app

    seen = []
    monkeypatch.setattr(app, "configure_plugins", lambda pm, config: seen.append(config))
    config = SimpleNamespace(plugins={}, daemon=SimpleNamespace(plugins=(),
                                                                plugins_disabled=()))
    app.build_plugin_manager(config)
    assert seen == [config]
