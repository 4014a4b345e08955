"""Sending with XOAUTH2, accounts before consent, and app-level failures and warnings."""

from __future__ import annotations

from datetime import date, timedelta
from functools import partial
from pathlib import Path

import pytest
import structlog
import trio

from daemon.actors.status import AccountState
from daemon.cli import main
from daemon.oauth.manager import OAuthManager
from tests.fakes.dovecot import make_message
from tests.fakes.smtp import FakeSmtp, free_port
from tests.oauth.conftest import ENTRA_CLIENT, ENTRA_SECRET
from tests.oauth.env import Clock, consent, entra_app, running_daemon, write_oauth_config

ENV = {"TEST_OAUTH_SECRET": ENTRA_SECRET}
ONE = (("support", "ann@contoso.example"),)


async def wait_for(status, predicate, seconds: float = 20.0) -> None:
    with trio.fail_after(seconds):
        while not predicate(status):
            await status.changed.wait()


@pytest.fixture
def smtp(oauth_ca, tmp_path, entra):
    server = FakeSmtp(oauth_ca, tmp_path, tls="none",
                      xoauth2=lambda user, token: token in entra.live_access_tokens(user))
    server.start()
    yield server
    server.stop()


async def test_an_agent_reply_goes_out_over_smtp_with_xoauth2(entra, oauth_dovecot, smtp,
                                                             tmp_path: Path):
    ann = oauth_dovecot.add_user("ann@contoso.example")
    path = write_oauth_config(tmp_path, port=free_port(), app=entra_app(entra, ENTRA_CLIENT),
                              dovecot=oauth_dovecot, smtp=smtp, accounts=ONE)
    async with running_daemon(path, ENV) as run:
        status = run.daemon.handles["support"].status
        assert (await consent(run.base, "support", entra.ca_file)).status_code == 200
        await wait_for(status, lambda s: s.state is AccountState.IDLE)
        await trio.to_thread.run_sync(oauth_dovecot.append, ann, make_message("Help"))
        await wait_for(status, lambda s: s.imported == 1)
        (message,) = (await run.get("/api/v1/objects/conversationmessage")).json()
        (alex,) = (await run.get("/api/v1/objects/coworker")).json()
        entra.expire_access_tokens()  # the cached token is refused: challenge, refresh, retry
        response = await run.post(f"/api/v1/conversations/{message['conversation']}/messages",
                                  json={"coworker": alex["id"], "html": "<p>Fixed.</p>"})
        assert response.status_code == 202, response.text
        await wait_for(run.daemon.outbox.status, lambda s: s.sent == 2)
    assert sorted(r.rcpt_tos for r in smtp.received) == [("ann@example.com",),
                                                        ("support@example.com",)]
    assert {(r.user, r.mail_from) for r in smtp.received} == {
        ("ann@contoso.example", "ann@contoso.example")}
    logins = [a for a in smtp.attempts if a[0] == "AUTH XOAUTH2"]
    assert logins[:2] == [("AUTH XOAUTH2", "ann@contoso.example")] * 2  # refused, then ok
    assert [r for r in entra.token_requests if r[0] == "refresh_token"] == [
        ("refresh_token", 200, None)]


async def test_before_consent_the_account_waits_and_its_replies_are_refused_at_once(
        entra, oauth_dovecot, tmp_path: Path):
    path = write_oauth_config(tmp_path, port=free_port(), app=entra_app(entra, ENTRA_CLIENT),
                              dovecot=oauth_dovecot, accounts=ONE)
    async with running_daemon(path, ENV) as run:
        status = run.daemon.handles["support"].status
        assert status.state is AccountState.NEEDS_AUTHENTICATION
        assert status.reconnects == 0  # no crash loop: nothing to retry
        ready = await run.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["attention"] == ["account 'support' needs authentication"]
        entry = (await run.get("/status")).json()["accounts"][0]
        assert entry["state"] == "needs_authentication"
        assert entry["oauth"]["authenticate"] == f"{run.base}/oauth/start?account=support"
        refused = await run.post("/api/v1/conversations/1/messages",
                                 json={"coworker": 1, "html": "<p>Hi</p>",
                                       "account": "support"})
        assert refused.status_code == 409
        assert "not signed in yet" in refused.json()["error"]
        assert "/oauth/start?account=support" in refused.json()["error"]
        assert await run.daemon.store.run(lambda tx: tx.outbox_by_status("queued")) == []
        assert status.reconnects == 0 and not entra.token_requests


async def test_an_expired_secret_is_one_app_level_error_shown_on_every_account(
        entra, oauth_dovecot, tmp_path: Path, monkeypatch):
    clock = Clock()
    monkeypatch.setattr("daemon.app.OAuthManager", partial(OAuthManager, now=clock))
    for _, email in (("support", "ann@contoso.example"), ("sales", "bob@contoso.example")):
        oauth_dovecot.add_user(email)
    path = write_oauth_config(tmp_path, port=free_port(), app=entra_app(entra, ENTRA_CLIENT),
                              dovecot=oauth_dovecot)
    async with running_daemon(path, ENV) as run:
        handles = run.daemon.handles
        for account in ("support", "sales"):
            assert (await consent(run.base, account, entra.ca_file)).status_code == 200
            await wait_for(handles[account].status, lambda s: s.state is AccountState.IDLE)
        entra.secret_expired = True
        entra.expire_access_tokens()
        clock.offset += 3600
        with structlog.testing.capture_logs() as logs:
            await trio.to_thread.run_sync(oauth_dovecot.restart)
            for account in ("support", "sales"):
                await wait_for(handles[account].status,
                               lambda s: s.state is AccountState.AUTH_ERROR)
        assert len([e for e in logs if e["event"] == "oauth.app.failing"]) == 1
        refused = [r for r in entra.token_requests if r[2] == "invalid_client"]
        assert 1 <= len(refused) <= 2  # the two accounts may race; then the app is shut
        for account in ("support", "sales"):
            handles[account].wake()
            await wait_for(handles[account].status,
                           lambda s: s.state is AccountState.AUTH_ERROR and s.reconnects >= 1)
        assert len([r for r in entra.token_requests if r[2] == "invalid_client"]) == len(refused)
        status = (await run.get("/status")).json()
        for entry in status["accounts"]:
            assert "invalid_client" in entry["oauth"]["app_error"]
            assert "AADSTS7000222" in entry["oauth"]["app_error"]
        (app,) = status["oauth_apps"]
        assert app["failing"] is True and "invalid_client" in app["error"]
        assert 'postroom_oauth_app_failing{app="m365"} 1.0' in (await run.get("/metrics")).text
        replies = await run.post("/api/v1/conversations/1/messages",
                                 json={"coworker": 1, "html": "x", "account": "sales"})
        assert replies.status_code == 409 and "is failing" in replies.json()["error"]


async def test_the_secret_expiry_warning_is_in_the_log_status_metrics_and_cli(
        entra, oauth_dovecot, tmp_path: Path, monkeypatch, capsys):
    expires = date.today() + timedelta(days=10)
    path = write_oauth_config(tmp_path, port=free_port(), app=entra_app(entra, ENTRA_CLIENT),
                              dovecot=oauth_dovecot, accounts=ONE,
                              extra_app=f"client_secret_expires = {expires.isoformat()}")
    monkeypatch.setenv("TEST_OAUTH_SECRET", ENTRA_SECRET)
    with structlog.testing.capture_logs() as logs:
        async with running_daemon(path, ENV) as run:
            (app,) = (await run.get("/status")).json()["oauth_apps"]
            metrics = (await run.get("/metrics")).text
            code = await trio.to_thread.run_sync(main, ["accounts", "--config", str(path)])
    (warning,) = [e for e in logs if e["event"] == "oauth.app.warning"]
    assert warning["app"] == "m365"
    assert f"expires on {expires} (in 10 days)" in warning["warning"]
    assert app["client_secret_days_left"] == 10
    assert app["warnings"] == [f"the client secret expires on {expires} (in 10 days); "
                               "renew it now"]
    assert 'postroom_oauth_client_secret_days_left{app="m365"} 10.0' in metrics
    assert code == 0
    assert (f"warning: oauth app m365: the client secret expires on {expires} (in 10 days)"
            in capsys.readouterr().out)


async def test_the_warning_repeats_daily(entra, oauth_dovecot, tmp_path: Path,
                                         autojump_clock):
    from daemon.config import load_config

    expires = date.today() + timedelta(days=3)
    path = write_oauth_config(tmp_path, port=free_port(), app=entra_app(entra, ENTRA_CLIENT),
                              dovecot=oauth_dovecot, accounts=ONE,
                              extra_app=f"client_secret_expires = {expires.isoformat()}")
    manager = OAuthManager(load_config(path, environ=ENV), store=None, secret_key=b"k" * 32)
    with structlog.testing.capture_logs() as logs:
        with trio.move_on_after(2 * 24 * 3600 + 1):
            await manager.run()
    assert len([e for e in logs if e["event"] == "oauth.app.warning"]) == 3
