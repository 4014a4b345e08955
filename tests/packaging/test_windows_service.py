"""The pywin32 service class, on Linux: start, stop, shutdown and early stop, against fake
``servicemanager``/``win32service``/``win32serviceutil`` modules."""

from __future__ import annotations

import importlib.util
import threading
import types

import pytest

from daemon.shipped import shipped_file
from tests.e2e.conftest import write_config

STOP_PENDING = 3


class FakeServiceFramework:
    """What the service uses of ``win32serviceutil.ServiceFramework``."""

    def __init__(self, args):
        self.args = args
        self.reported = []

    def ReportServiceStatus(self, status, waitHint=5000, win32ExitCode=0, svcExitCode=0):
        self.reported.append((status, waitHint))


@pytest.fixture
def fakes(monkeypatch):
    events = types.SimpleNamespace(info=[], errors=[], options={})
    servicemanager = types.ModuleType("servicemanager")
    servicemanager.LogInfoMsg = events.info.append
    servicemanager.LogErrorMsg = events.errors.append
    win32service = types.ModuleType("win32service")
    win32service.SERVICE_STOP_PENDING = STOP_PENDING
    win32serviceutil = types.ModuleType("win32serviceutil")
    win32serviceutil.ServiceFramework = FakeServiceFramework
    win32serviceutil.GetServiceCustomOption = (
        lambda name, option, default=None: events.options.get((name, option), default))
    win32serviceutil.SetServiceCustomOption = (
        lambda name, option, value: events.options.__setitem__((name, option), value))
    for module in (servicemanager, win32service, win32serviceutil):
        monkeypatch.setitem(__import__("sys").modules, module.__name__, module)
    return events


@pytest.fixture
def module(fakes):
    spec = importlib.util.spec_from_file_location(
        "postroom_service", str(shipped_file("service/windows/postroom_service.py")))
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded


@pytest.fixture
def config(tmp_path, monkeypatch):
    monkeypatch.setenv("PROGRAMDATA", str(tmp_path / "ProgramData"))
    return write_config(tmp_path, http=False)  # shutdown_grace_seconds = 5


def run_in_thread(service) -> threading.Thread:
    thread = threading.Thread(target=service.SvcDoRun, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("control", ["SvcStop", "SvcShutdown"])
def test_stop_and_shutdown_stop_the_daemon_gracefully(module, fakes, config, tmp_path, control):
    service = module.PostroomService(["postroom", str(config)])
    thread = run_in_thread(service)
    assert service.running.wait(30)
    getattr(service, control)()
    thread.join(30)
    assert not thread.is_alive()
    assert service.reported == [(STOP_PENDING, (5 + 10) * 1000)]
    log = (tmp_path / "ProgramData" / "postroom" / "logs" / "postroom.log").read_text()
    assert '"event":"daemon.stopping"' in log and '"event":"daemon.stopped"' in log
    assert fakes.info == [f"postroom starting with {config}", "postroom stopped"]
    assert fakes.errors == []


def test_a_stop_before_start_up_is_not_lost(module, fakes, config):
    service = module.PostroomService(["postroom", str(config)])
    service.SvcStop()
    service.SvcDoRun()  # returns: the daemon is never started
    assert not service.running.is_set()
    assert service.reported == [(STOP_PENDING, (15 + 10) * 1000)]  # grace not yet known


def test_a_stop_before_the_loop_runs_stops_it_as_soon_as_it_does(module, config):
    import trio

    from daemon.config import load_config

    service = module.PostroomService(["postroom", str(config)])
    service.SvcStop()  # after SvcDoRun's own check, before the Trio loop has a token
    trio.run(service._main, load_config(config))  # returns: the stop was honoured
    assert service.running.is_set()


def test_without_a_configuration_path_the_service_says_how_to_give_one(module, fakes):
    service = module.PostroomService(["postroom"])
    with pytest.raises(module.ServiceConfigError):
        service.SvcDoRun()
    assert fakes.errors == [module.MISSING_CONFIG]
    assert "-c C:\\ProgramData\\postroom\\postroom.toml" in module.MISSING_CONFIG


def test_an_invalid_configuration_is_logged_and_stops_the_service(module, fakes, tmp_path):
    bad = tmp_path / "postroom.toml"
    bad.write_text("[daemon]\nstore = 42\n")
    service = module.PostroomService(["postroom", str(bad)])
    with pytest.raises(module.ServiceConfigError):
        service.SvcDoRun()
    assert fakes.errors[0].startswith("postroom: invalid configuration:")
    assert "daemon.store" in fakes.errors[0]


def test_the_stored_path_is_used_and_a_start_parameter_wins(module, fakes, tmp_path):
    module.store_options([("-c", str(tmp_path / "stored.toml"))])
    assert fakes.options == {("postroom", "config"): str(tmp_path / "stored.toml")}
    assert module.PostroomService(["postroom"]).config_path() == tmp_path / "stored.toml"
    given = module.PostroomService(["postroom", "C:/other.toml"]).config_path()
    assert str(given) == "C:/other.toml"


def test_the_service_accepts_shutdown(module):
    # pywin32 accepts SERVICE_CONTROL_SHUTDOWN only for classes that define SvcShutdown.
    assert "SvcShutdown" in vars(module.PostroomService)
