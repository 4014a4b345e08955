r"""postroom as a Windows service hosted by pywin32: for a system-wide Python only.

pywin32 services run inside ``pythonservice.exe``, which does not work from a virtualenv
(pywin32 issue #1450); the default route is WinSW (``postroom.xml`` beside this file),
which works with any install. Use this file when postroom and pywin32 are installed into
a system-wide Python. From an elevated prompt::

    python -m pip install pywin32 postroom
    python postroom_service.py -c C:\ProgramData\postroom\postroom.toml --startup auto install
    python postroom_service.py start

``-c`` stores the configuration path with the service (the registry value
``HKLM\SYSTEM\CurrentControlSet\Services\postroom\Parameters\config``, read at every
start; change it with ``-c ... update``). A path given as a start parameter
(``sc start postroom C:\other.toml``) wins for that start. Without either, the service
writes why to the Application event log and stops with an error.

Logs are JSON lines in ``%ProgramData%\postroom\logs\postroom.log`` (no journald).

Stopping: the SCM's stop and shutdown requests (``SvcStop``, ``SvcShutdown``) arrive on its
control thread. They are passed into the running Trio loop through its token and set the
daemon's stop event: the same graceful path as SIGTERM. A request that arrives before the
loop runs is remembered and honoured as soon as it does. The SCM is told to wait
``shutdown_grace_seconds`` plus a margin (the wait hint), the time the daemon may take.
Note that at OS shutdown Windows waits only a few seconds for services (by default), so a
long grace period is cut short there.
"""

from __future__ import annotations

import contextlib
import os
import threading
from pathlib import Path
from typing import Any

import servicemanager  # type: ignore[import-not-found]
import trio
import win32service  # type: ignore[import-not-found]
import win32serviceutil  # type: ignore[import-not-found]

from daemon.app import run_daemon
from daemon.config import DaemonSettings, load_config
from daemon.errors import ConfigError
from daemon.log import configure_logging

SERVICE_NAME = "postroom"
#: The service's registry value holding the configuration path (set with ``-c``).
CONFIG_OPTION = "config"
#: Beyond the grace period: closing the store and the log after the last task ends.
STOP_MARGIN_SECONDS = 10.0
DEFAULT_GRACE_SECONDS: float = DaemonSettings.model_fields["shutdown_grace_seconds"].default

MISSING_CONFIG = (
    "postroom: no configuration file. Store its path with the service "
    r"(python postroom_service.py -c C:\ProgramData\postroom\postroom.toml update) "
    "or give it as the start parameter (sc start postroom PATH).")


class ServiceConfigError(RuntimeError):
    """The service cannot start: no configuration path, or the file is invalid."""


def log_directory() -> Path:
    """``%ProgramData%\\postroom\\logs`` (created on first use)."""
    return Path(os.environ.get("PROGRAMDATA", r"C:\ProgramData")) / "postroom" / "logs"


class PostroomService(win32serviceutil.ServiceFramework):
    _svc_name_ = SERVICE_NAME
    _svc_display_name_ = "postroom email integration"
    _svc_description_ = "Turns support mailboxes into CRM conversations."

    def __init__(self, args: Any) -> None:
        super().__init__(args)
        self._start_parameters = [str(a) for a in list(args)[1:]]
        self._lock = threading.Lock()
        self._stop_requested = False
        self._token: trio.lowlevel.TrioToken | None = None
        self._stop: trio.Event | None = None
        self._grace = DEFAULT_GRACE_SECONDS
        #: Set once the daemon runs (its actors and HTTP server started); for tests.
        self.running = threading.Event()

    # -- the SCM's control thread -----------------------------------------------------

    def SvcStop(self) -> None:
        self._request_stop()

    def SvcShutdown(self) -> None:
        self._request_stop()

    def wait_hint_ms(self) -> int:
        """How long the SCM should wait for the stop: the grace period plus a margin."""
        return int((self._grace + STOP_MARGIN_SECONDS) * 1000)

    def _request_stop(self) -> None:
        self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING,
                                 waitHint=self.wait_hint_ms())
        with self._lock:
            self._stop_requested = True
            token, stop = self._token, self._stop
        if token is not None and stop is not None:
            with contextlib.suppress(trio.RunFinishedError):  # the loop has ended already
                token.run_sync_soon(stop.set)

    # -- the service's main thread ----------------------------------------------------

    def config_path(self) -> Path:
        """The start parameter, else the stored ``config`` option.

        Raises:
            ServiceConfigError: neither is set.
        """
        if self._start_parameters:
            return Path(self._start_parameters[0])
        stored = win32serviceutil.GetServiceCustomOption(self._svc_name_, CONFIG_OPTION)
        if not stored:
            raise ServiceConfigError(MISSING_CONFIG)
        return Path(stored)

    def SvcDoRun(self) -> None:
        try:
            config = load_config(self.config_path())
        except ServiceConfigError as exc:
            servicemanager.LogErrorMsg(str(exc))
            raise
        except ConfigError as exc:
            servicemanager.LogErrorMsg(f"postroom: invalid configuration:\n{exc}")
            raise ServiceConfigError(str(exc)) from None
        self._grace = config.daemon.shutdown_grace_seconds
        if self._stop_requested:
            return
        servicemanager.LogInfoMsg(f"postroom starting with {config.path}")
        directory = log_directory()
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "postroom.log", "a", buffering=1, encoding="utf-8") as stream:
            configure_logging("json", config.daemon.log_level, stream=stream)
            trio.run(self._main, config)
        servicemanager.LogInfoMsg("postroom stopped")

    async def _main(self, config: Any) -> None:
        stop = trio.Event()
        with self._lock:
            self._token = trio.lowlevel.current_trio_token()
            self._stop = stop
            if self._stop_requested:
                stop.set()
        async with trio.open_nursery() as nursery:
            await nursery.start(self._run, config, stop)
            self.running.set()

    async def _run(self, config: Any, stop: trio.Event, *,
                   task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await run_daemon(config, stop=stop, handle_signals=False, task_status=task_status)


def store_options(options: list[tuple[str, str]]) -> None:
    """``HandleCommandLine``'s hook after install/update: remember ``-c PATH``."""
    for flag, value in options:
        if flag == "-c":
            path = str(Path(value).resolve())
            win32serviceutil.SetServiceCustomOption(SERVICE_NAME, CONFIG_OPTION, path)
            print(f"postroom service: configuration {path}")


if __name__ == "__main__":
    win32serviceutil.HandleCommandLine(PostroomService, customInstallOptions="c:",
                                       customOptionHandler=store_options)
