"""The files postroom ships beside its code: example configuration and service files.

They live at the top of the source tree, where people look for them (``config/``,
``service/``); ``daemon/share/`` holds symbolic links to them, and the wheel build copies
what the links point to, so an installed postroom carries real files at
``daemon/share/``. One lookup then serves a checkout (editable install) and a wheel alike.

The trade-off: links instead of copies keep one version of each file in the repository,
at the price of a checkout on Windows without symlink support (``core.symlinks=false``),
where the links are small text files; installs from a wheel are not affected.
"""

from __future__ import annotations

__all__ = ["SHIPPED", "shipped_file"]

from importlib import resources
from importlib.abc import Traversable

#: Every shipped file by name (a path below ``daemon/share/``), with what it is for.
SHIPPED = {
    "postroom.example.toml": "every configuration key, with comments",
    "runtime.example.json": "the runtime configuration JSON (reference defaults)",
    "service/README.md": "how to install the service files",
    "service/systemd/postroom.service": "the systemd unit (Type=notify, hardened)",
    "service/windows/postroom.xml": "the WinSW service definition (Windows default)",
    "service/windows/postroom_service.py": "the pywin32 service (system-wide Python only)",
}


def shipped_file(name: str) -> Traversable:
    """The shipped file ``name`` (a key of :data:`SHIPPED`).

    Raises:
        KeyError: ``name`` is not a shipped file.
        FileNotFoundError: the installation lacks it (a broken build).
    """
    if name not in SHIPPED:
        raise KeyError(name)
    found = resources.files("daemon").joinpath("share", *name.split("/"))
    if not found.is_file():
        raise FileNotFoundError(f"{name} is missing from this installation of postroom")
    return found
