"""The whole daemon with Microsoft OAuth accounts against the Entra emulator and Dovecot."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import structlog
import trio

from daemon.actors.status import AccountState
from daemon.app import run_daemon
from daemon.config import load_config
from daemon.oauth.manager import OAuthManager
from tests.fakes.dovecot import make_message
from tests.fakes.smtp import free_port
from tests.oauth.conftest import ENTRA_CLIENT, ENTRA_SECRET
from tests.oauth.env import Clock, consent, entra_app, write_oauth_config

ENV = {"TEST_OAUTH_SECRET": ENTRA_SECRET}


async def wait_for(status, predicate, seconds: float = 20.0) -> None:
    with trio.fail_after(seconds):
        while not predicate(status):
            await status.changed.wait()


def state_is(state: AccountState):
    return lambda s: s.state is state


async def test_the_whole_flow_consent_import_refresh_revocation(
        entra, oauth_dovecot, tmp_path: Path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr("daemon.app.OAuthManager", partial(OAuthManager, now=clock))
    ann = oauth_dovecot.add_user("ann@contoso.example")
    bob = oauth_dovecot.add_user("bob@contoso.example")
    port = free_port()
    path = write_oauth_config(tmp_path, port=port, app=entra_app(entra, ENTRA_CLIENT),
                              dovecot=oauth_dovecot)
    config = load_config(path, environ=ENV)
    base = f"http://127.0.0.1:{port}"
    stop = trio.Event()
    with structlog.testing.capture_logs() as logs:
        await _whole_flow(config, base, entra, oauth_dovecot, ann, bob, clock, tmp_path, stop)
    secrets = [*entra.access_tokens, *entra.refresh_tokens, ENTRA_SECRET]
    assert len(logs) > 20 and not [s for s in secrets if s in repr(logs)]


async def _whole_flow(config, base, entra, oauth_dovecot, ann, bob, clock, tmp_path,
                      stop) -> None:
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(lambda task_status: run_daemon(
            config, stop=stop, handle_signals=False, task_status=task_status))
        support, sales = daemon.handles["support"].status, daemon.handles["sales"].status

        # start -> redirect with PKCE S256, state, nonce
        async with httpx.AsyncClient(base_url=base) as client:
            start = await client.get("/oauth/start", params={"account": "support"})
        assert start.status_code == 302
        query = parse_qs(urlsplit(start.headers["location"]).query)
        assert start.headers["location"].startswith(f"{entra.base_url}/contoso/oauth2/v2.0/")
        assert query["code_challenge_method"] == ["S256"]
        assert len(query["code_challenge"][0]) == 43
        assert query["state"][0] and query["nonce"][0]
        assert query["redirect_uri"] == [f"{base}/oauth/callback"]
        assert query["response_mode"] == ["form_post"]
        assert "https://outlook.office.com/IMAP.AccessAsUser.All" in query["scope"][0]

        # -> callback (form_post) -> tokens stored -> IMAP XOAUTH2 imports mail
        for account in ("support", "sales"):
            page = await consent(base, account, entra.ca_file)
            assert page.status_code == 200, page.text
            assert "is connected, signed in as" in page.text
        await wait_for(support, state_is(AccountState.IDLE))
        await wait_for(sales, state_is(AccountState.IDLE))
        await trio.to_thread.run_sync(oauth_dovecot.append, ann, make_message("First"))
        await wait_for(support, lambda s: s.imported == 1)

        db = b"".join(p.read_bytes() for p in tmp_path.iterdir()
                      if p.name.startswith("postroom.db"))
        secrets = [*entra.access_tokens, *entra.refresh_tokens, ENTRA_SECRET]
        assert secrets and not [s for s in secrets if s.encode() in db]

        # the access token expires -> silent refresh at the next login
        refreshes = sum(1 for r in entra.token_requests if r[0] == "refresh_token")
        entra.expire_access_tokens()
        clock.offset += 3600
        await trio.to_thread.run_sync(oauth_dovecot.restart)
        await wait_for(support, lambda s: s.reconnects >= 1 and s.state is AccountState.IDLE)
        await wait_for(sales, lambda s: s.reconnects >= 1 and s.state is AccountState.IDLE)
        assert [r for r in entra.token_requests if r[0] == "refresh_token"][refreshes:] == [
            ("refresh_token", 200, None)] * 2
        await trio.to_thread.run_sync(oauth_dovecot.append, ann, make_message("Second"))
        await wait_for(support, lambda s: s.imported == 2)

        # consent revoked -> auth_error with a re-authenticate link; sales keeps working
        entra.revoke("ann@contoso.example")
        entra.expire_access_tokens()
        clock.offset += 3600
        await trio.to_thread.run_sync(oauth_dovecot.restart)
        await wait_for(support, state_is(AccountState.AUTH_ERROR))
        await wait_for(sales, lambda s: s.reconnects >= 2 and s.state is AccountState.IDLE)
        await trio.to_thread.run_sync(oauth_dovecot.append, bob, make_message("For sales"))
        await wait_for(sales, lambda s: s.imported == 1)
        async with httpx.AsyncClient(base_url=base) as client:
            status = (await client.get("/status")).json()
        entry = {a["account"]: a for a in status["accounts"]}["support"]
        assert entry["state"] == "auth_error"
        assert "invalid_grant" in entry["last_error"]
        assert entry["oauth"]["authenticate"] == f"{base}/oauth/start?account=support"
        assert entry["oauth"]["user"] == "ann@contoso.example"
        assert "authenticate" not in {a["account"]: a for a in status["accounts"]}[
            "sales"]["oauth"]

        # signing in again brings it back
        page = await consent(base, "support", entra.ca_file)
        assert page.status_code == 200
        await wait_for(support, state_is(AccountState.IDLE))
        stop.set()


async def test_the_reference_form_redirect_uri_works_end_to_end(entra, oauth_dovecot,
                                                                tmp_path: Path):
    oauth_dovecot.add_user("ann@contoso.example")
    port = free_port()
    reference = f"http://127.0.0.1:{port}/my-app/limepkg-email/oauth/callback"
    path = write_oauth_config(tmp_path, port=port, app=entra_app(entra, ENTRA_CLIENT),
                              dovecot=oauth_dovecot, redirect_uri=reference,
                              accounts=(("support", "ann@contoso.example"),))
    config = load_config(path, environ=ENV)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(lambda task_status: run_daemon(
            config, stop=stop, handle_signals=False, task_status=task_status))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            start = await client.get("/oauth/start", params={"account": "support"})
        assert parse_qs(urlsplit(start.headers["location"]).query)["redirect_uri"] == [
            reference]
        page = await consent(f"http://127.0.0.1:{port}", "support", entra.ca_file)
        assert page.status_code == 200
        assert str(page.url) == reference
        await wait_for(daemon.handles["support"].status, state_is(AccountState.IDLE))
        stop.set()


async def test_a_shared_mailbox_logs_in_as_the_mailbox_with_the_delegate_s_token(
        entra, oauth_dovecot, tmp_path: Path):
    shared = oauth_dovecot.add_user("helpdesk@contoso.example")
    entra.sign_in_as = "delegate@contoso.example"
    port = free_port()
    path = write_oauth_config(tmp_path, port=port, app=entra_app(entra, ENTRA_CLIENT),
                              dovecot=oauth_dovecot,
                              accounts=(("support", "helpdesk@contoso.example"),))
    config = load_config(path, environ=ENV)
    base = f"http://127.0.0.1:{port}"
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(lambda task_status: run_daemon(
            config, stop=stop, handle_signals=False, task_status=task_status))
        page = await consent(base, "support", entra.ca_file)
        assert "helpdesk@contoso.example is connected, signed in as " \
               "delegate@contoso.example" in page.text
        status = daemon.handles["support"].status
        await wait_for(status, state_is(AccountState.IDLE))
        await trio.to_thread.run_sync(oauth_dovecot.append, shared, make_message("Shared"))
        await wait_for(status, lambda s: s.imported == 1)
        async with httpx.AsyncClient(base_url=base) as client:
            (entry,) = (await client.get("/status")).json()["accounts"]
        assert entry["oauth"]["user"] == "delegate@contoso.example"
        assert {t.user for t in entra.access_tokens.values()} == {"delegate@contoso.example"}
        stop.set()


async def test_a_token_refused_before_its_expiry_is_refreshed_once_at_login(
        entra, oauth_dovecot, tmp_path: Path):
    ann = oauth_dovecot.add_user("ann@contoso.example")
    port = free_port()
    path = write_oauth_config(tmp_path, port=port, app=entra_app(entra, ENTRA_CLIENT),
                              dovecot=oauth_dovecot,
                              accounts=(("support", "ann@contoso.example"),))
    config = load_config(path, environ=ENV)
    stop = trio.Event()
    async with trio.open_nursery() as nursery:
        daemon = await nursery.start(lambda task_status: run_daemon(
            config, stop=stop, handle_signals=False, task_status=task_status))
        await consent(f"http://127.0.0.1:{port}", "support", entra.ca_file)
        status = daemon.handles["support"].status
        await wait_for(status, state_is(AccountState.IDLE))
        entra.expire_access_tokens()  # dead at the server, still an hour left for us
        await trio.to_thread.run_sync(oauth_dovecot.restart)
        await wait_for(status, lambda s: s.reconnects >= 1 and s.state is AccountState.IDLE)
        assert [r for r in entra.token_requests if r[0] == "refresh_token"] == [
            ("refresh_token", 200, None)]
        await trio.to_thread.run_sync(oauth_dovecot.append, ann, make_message("After"))
        await wait_for(status, lambda s: s.imported == 1)
        stop.set()
