"""The installation's secret key: signs our Message-IDs and encrypts tokens at rest.

From ``[daemon] secret_key_env`` / ``secret_key_file`` when configured. Otherwise, for the
embedded SQLite store only, a random key is created once next to the database file
(``<db>.key``, mode 0600) so a demo runs without setup; PostgreSQL deployments serve
several nodes and must configure the key explicitly.
"""

from __future__ import annotations

__all__ = ["load_secret_key"]

import hashlib
import os
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from daemon.errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from daemon.config.load import Config


def load_secret_key(config: Config) -> bytes:
    """32 bytes of key material for this installation."""
    configured = config.daemon.secret_key
    if configured is not None:
        return hashlib.sha256(configured.reveal().encode()).digest()
    url = config.daemon.store
    if not url.startswith("sqlite:///"):
        raise ConfigError([ConfigProblem(str(config.path), "daemon.secret_key_env",
                                         "required when the store is not SQLite")])
    key_file = Path(url.removeprefix("sqlite:///") + ".key")
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
    return hashlib.sha256(key_file.read_text().strip().encode()).digest()
