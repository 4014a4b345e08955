"""Fixtures: a throwaway PostgreSQL schema, and a store that runs in the Trio thread."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import trio

from daemon.store.sqlite import SqliteStore
from tests.store.conftest import postgres_schema


@pytest.fixture
def pg_url() -> Iterator[str]:
    with postgres_schema() as url:
        yield url


class DirectStore:
    """An AsyncStore stand-in running each transaction in the Trio thread, so Trio's
    MockClock sees no worker threads. ``cut = True`` makes every call hang, as a
    database that cannot be reached does (until the TCP timeouts, much later)."""

    def __init__(self) -> None:
        self.store = SqliteStore(":memory:")
        self.cut = False
        self.calls = 0

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        await trio.lowlevel.checkpoint()
        if self.cut:
            await trio.sleep_forever()
        self.calls += 1
        with self.store.transaction() as tx:
            return fn(tx, *args)


@pytest.fixture
def direct_store() -> Iterator[DirectStore]:
    store = DirectStore()
    yield store
    store.store.close()


def write_node_config(root, store_url: str, node: str, accounts: list[str], *,
                      lease: float = 3.0, renew: float = 1.0, http: bool = False,
                      imap_port: int | None = None, password_env: str = "") -> Any:
    """A TOML file for one node of several: ``accounts`` as Maildir accounts under
    ``root`` (or, with ``imap_port``, IMAP accounts on that port, user = account id)."""
    import json
    import shutil
    import textwrap
    from pathlib import Path

    demo = Path(__file__).resolve().parents[2] / "config" / "demo"
    root = Path(root)
    shutil.copy(demo / "runtime.json", root / "runtime.json")
    blocks = []
    for account in accounts:
        if imap_port is None:
            for sub in ("new", "cur", "tmp"):
                (root / account / sub).mkdir(parents=True, exist_ok=True)
            source = f'auth = "maildir"\nmaildir = {json.dumps(str(root / account))}'
        else:
            source = textwrap.dedent(f"""\
                auth = "dovecot"
                username = "{account}"
                password_env = "{password_env}"
                backoff_cap_seconds = 2
                """)
        blocks.append(f'[[accounts]]\nid = "{account}"\nname = "{account}"\n'
                      f'email = "{account}@demo.example"\n{source}\n')
    connections = "" if imap_port is None else textwrap.dedent(f"""\
        [[imap_connections]]
        id = "dovecot"
        imap_host = "127.0.0.1"
        imap_port = {imap_port}
        imap_tls = "none"
        smtp_host = "127.0.0.1"
        smtp_tls = "none"
        connect_timeout_seconds = 5
        read_timeout_seconds = 10
        """)
    (root / "secret.key").write_text("k" * 40)
    (root / "secret.key").chmod(0o600)
    path = root / f"{node}.toml"
    path.write_text(textwrap.dedent(f"""\
        [daemon]
        store = "{store_url}"
        runtime = "runtime.json"
        secret_key_file = "secret.key"
        node_id = "{node}"
        log_format = "json"
        shutdown_grace_seconds = 5
        lease_seconds = {lease}
        lease_renew_seconds = {renew}

        [http]
        enabled = {"true" if http else "false"}
        bind = "127.0.0.1:0"

        """) + connections + "\n" + "\n".join(blocks))
    return path
