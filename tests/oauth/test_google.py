"""Google through httpx: offline access with consent, granular consent refused, XOAUTH2."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import trio

from daemon.actors.status import AccountState
from tests.fakes.dovecot import make_message
from tests.fakes.smtp import free_port
from tests.oauth.conftest import GOOGLE_CLIENT, GOOGLE_SECRET
from tests.oauth.env import consent, google_app, running_daemon, write_oauth_config

ENV = {"TEST_OAUTH_SECRET": GOOGLE_SECRET}
ONE = (("support", "ann@gmail.example"),)


async def wait_for(status, predicate, seconds: float = 20.0) -> None:
    with trio.fail_after(seconds):
        while not predicate(status):
            await status.changed.wait()


def config(tmp_path: Path, google, dovecot) -> Path:
    return write_oauth_config(tmp_path, port=free_port(), app=google_app(google, GOOGLE_CLIENT),
                              dovecot=dovecot, accounts=ONE)


async def test_a_google_sign_in_stores_a_refresh_token_and_imap_imports(
        google, google_dovecot, tmp_path: Path):
    ann = google_dovecot.add_user("ann@gmail.example")
    async with running_daemon(config(tmp_path, google, google_dovecot), ENV) as run:
        start = await run.get("/oauth/start", params={"account": "support"})
        query = parse_qs(urlsplit(start.headers["location"]).query)
        assert start.headers["location"].startswith(google.authorize_url)
        assert (query["access_type"], query["prompt"], query["code_challenge_method"]) == (
            ["offline"], ["consent"], ["S256"])
        assert "https://mail.google.com/" in query["scope"][0].split()
        page = await consent(run.base, "support", google.ca_file)
        assert page.status_code == 200 and "signed in as ann@gmail.example" in page.text
        status = run.daemon.handles["support"].status
        await wait_for(status, lambda s: s.state is AccountState.IDLE)
        await trio.to_thread.run_sync(google_dovecot.append, ann, make_message("Gmail"))
        await wait_for(status, lambda s: s.imported == 1)
        grant = await run.daemon.oauth.grant("support")
        assert grant.refresh_token in google.refresh_tokens
        db = b"".join(p.read_bytes() for p in tmp_path.iterdir()
                      if p.name.startswith("postroom.db"))
        assert grant.refresh_token.encode() not in db
        assert grant.access_token.encode() not in db


async def test_a_grant_without_a_refresh_token_or_the_mail_scope_stores_nothing(
        google, google_dovecot, tmp_path: Path):
    async with running_daemon(config(tmp_path, google, google_dovecot), ENV) as run:
        google.omit_refresh_token = True
        page = await consent(run.base, "support", google.ca_file)
        assert page.status_code == 400 and "no refresh token" in page.text
        google.omit_refresh_token = False
        google.granted_scopes = ("openid", "email")  # the user unticked mail access
        page = await consent(run.base, "support", google.ca_file)
        assert page.status_code == 400 and "mail scope" in page.text
        assert await run.stored_grant("support") is None
        assert run.daemon.handles["support"].status.state is AccountState.NEEDS_AUTHENTICATION
