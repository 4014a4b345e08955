"""``postroom backup FILE``: a consistent copy of the SQLite store, taken while it runs.

SQLite's online backup API (:meth:`sqlite3.Connection.backup`) copies the database page by
page under a read transaction, so the copy is one committed state even while the daemon
writes (WAL mode lets it carry on). Copying the file with ``cp`` would not be: the WAL
holds commits the main file does not have yet.

The copy is then checked the way a restore would use it (:func:`check_backup`): opened on
its own, ``PRAGMA integrity_check``, its schema version, and the rows of every table
counted. A backup that fails the check is reported as a failure, not left to be found at
restore time.

The installation key (``<db>.key``, generated next to the database when no
``secret_key_*`` is configured) is copied beside the backup as ``<FILE>.key``: without
it, replies to mail sent before a restore no longer thread by signature. Both files are
created with mode 0600 (the database holds every raw mail).

PostgreSQL is backed up with ``pg_dump``; this module does not handle it.
"""

from __future__ import annotations

__all__ = ["BackupReport", "backup_sqlite", "check_backup"]

import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from daemon.errors import StoreError
from daemon.store import migrations


@dataclass(frozen=True, slots=True)
class BackupReport:
    """What :func:`check_backup` found in a backup file."""

    path: Path
    schema_version: int
    rows: dict[str, int]
    key_file: Path | None

    def summary(self) -> str:
        counts = ", ".join(f"{n} {table}" for table, n in self.rows.items())
        key = f"; key {self.key_file.name}" if self.key_file else ""
        return f"schema {self.schema_version}; {counts}; integrity ok{key}"


def backup_sqlite(database: Path, target: Path) -> BackupReport:
    """Copy the SQLite ``database`` into the new file ``target``, then check the copy.

    Raises:
        FileExistsError: ``target`` (or ``<target>.key``) exists; nothing is written.
        FileNotFoundError: ``database`` does not exist.
        StoreError: the copy failed or does not pass :func:`check_backup` (a failed copy
            is removed).
    """
    if not database.is_file():
        raise FileNotFoundError(f'no database "{database}"')
    key = Path(f"{database}.key")
    target_key = Path(f"{target}.key")
    for path in (target, target_key):
        if path.exists():
            raise FileExistsError(f'"{path}" exists; not overwritten')
    _create_private(target)
    try:
        source = sqlite3.connect(database)
        try:
            copy = sqlite3.connect(target)
            try:
                source.backup(copy)
            finally:
                copy.close()
        finally:
            source.close()
        if key.is_file():
            _create_private(target_key)
            shutil.copyfile(key, target_key)
        return check_backup(target)
    except (sqlite3.Error, StoreError, OSError) as exc:
        for path in (target, target_key):
            path.unlink(missing_ok=True)
        if isinstance(exc, StoreError):
            raise
        raise StoreError(f"backup failed: {exc}") from exc


def check_backup(path: Path) -> BackupReport:
    """Open the backup ``path`` read-only and check it can be restored.

    Raises:
        StoreError: it is not a SQLite database, fails ``integrity_check``, or holds no
            postroom schema, or a schema newer than this code.
    """
    if not path.is_file():
        raise StoreError(f'no backup "{path}"')
    try:
        conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise StoreError(f'"{path}" cannot be opened: {exc}') from exc
    try:
        verdict = [row[0] for row in conn.execute("PRAGMA integrity_check")]
        if verdict != ["ok"]:
            raise StoreError(f'"{path}" fails the integrity check: {"; ".join(verdict[:5])}')
        tables = [row[0] for row in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' "
            "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        if "schema_version" not in tables:
            raise StoreError(f'"{path}" holds no postroom store')
        version = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version"
                               ).fetchone()[0]
        if version > len(migrations.SQLITE):
            raise StoreError(f'"{path}" has schema {version}, newer than this postroom '
                             f"({len(migrations.SQLITE)})")
        rows = {table: conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()[0]
                for table in tables if table != "schema_version"}
    except sqlite3.DatabaseError as exc:
        raise StoreError(f'"{path}" is not a usable SQLite database: {exc}') from exc
    finally:
        conn.close()
    key = Path(f"{path}.key")
    return BackupReport(path, version, rows, key if key.is_file() else None)


def _create_private(path: Path) -> None:
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
