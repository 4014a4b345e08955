"""postroom as a Windows service (pywin32).

Install (an elevated prompt, in the virtualenv that has postroom and pywin32)::

    pip install pywin32
    python postroom_service.py --startup auto install
    setx /M POSTROOM_CONFIG C:\\ProgramData\\postroom\\postroom.toml
    python postroom_service.py start

The service main is not the main thread, so Trio's signal handling is unavailable: stop
requests arrive on the service control thread and are passed into the running Trio loop
with its token, which sets the daemon's stop event — the same graceful path as SIGTERM.
Logs go to the JSON log file named by ``POSTROOM_LOG_FILE`` (there is no journald).
"""

from __future__ import annotations

import os

import servicemanager  # type: ignore[import-not-found]
import trio
import win32event  # type: ignore[import-not-found]
import win32service  # type: ignore[import-not-found]
import win32serviceutil  # type: ignore[import-not-found]

from daemon.app import run_daemon
from daemon.config import load_config
from daemon.log import configure_logging


class PostroomService(win32serviceutil.ServiceFramework):
    _svc_name_ = "postroom"
    _svc_display_name_ = "postroom email integration"
    _svc_description_ = "Turns support mailboxes into CRM conversations."

    def __init__(self, args):
        super().__init__(args)
        self._stop_handle = win32event.CreateEvent(None, 0, 0, None)
        self._token = None
        self._stop = None

    def SvcStop(self):
        self.ReportServiceStatus(win32service.SERVICE_STOP_PENDING)
        if self._token is not None and self._stop is not None:
            self._token.run_sync_soon(self._stop.set)
        win32event.SetEvent(self._stop_handle)

    def SvcDoRun(self):
        servicemanager.LogInfoMsg("postroom starting")
        config = load_config(os.environ["POSTROOM_CONFIG"])
        log_file = os.environ.get("POSTROOM_LOG_FILE")
        if log_file:
            with open(log_file, "a", buffering=1, encoding="utf-8") as stream:
                configure_logging("json", config.daemon.log_level, stream=stream)
                trio.run(self._main, config)
        else:
            configure_logging("json", config.daemon.log_level)
            trio.run(self._main, config)

    async def _main(self, config):
        self._token = trio.lowlevel.current_trio_token()
        self._stop = trio.Event()
        await run_daemon(config, stop=self._stop, handle_signals=False)


if __name__ == "__main__":
    win32serviceutil.HandleCommandLine(PostroomService)
