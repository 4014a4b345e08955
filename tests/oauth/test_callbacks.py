"""Forged and refused callbacks store nothing; /oauth/start needs the API token or a link."""

from __future__ import annotations

import re
import ssl
from functools import partial
from pathlib import Path

import httpx
import pytest

from daemon.actors.status import AccountState
from daemon.cli import main
from daemon.oauth.manager import OAuthManager
from tests.fakes.smtp import free_port
from tests.oauth.conftest import ENTRA_CLIENT, ENTRA_SECRET
from tests.oauth.env import (
    Clock,
    consent,
    entra_app,
    follow_to_callback,
    running_daemon,
    write_oauth_config,
)

ENV = {"TEST_OAUTH_SECRET": ENTRA_SECRET}
ONE = (("support", "ann@contoso.example"),)


@pytest.fixture
def config_path(entra, oauth_dovecot, tmp_path: Path) -> Path:
    oauth_dovecot.add_user("ann@contoso.example")
    return write_oauth_config(tmp_path, port=free_port(), app=entra_app(entra, ENTRA_CLIENT),
                              dovecot=oauth_dovecot, accounts=ONE)


async def authorize_form(run, entra) -> tuple[str, dict[str, str]]:
    """Start a sign-in and sign in at the emulator; the form the browser would post."""
    start = await run.get("/oauth/start", params={"account": "support"})
    context = ssl.create_default_context(cafile=str(entra.ca_file))
    async with httpx.AsyncClient(verify=context, trust_env=False) as idp:
        page = await idp.get(start.headers["location"])
    action = re.search(r'action="([^"]+)"', page.text).group(1)
    return action, dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page.text))


async def test_wrong_and_replayed_states_are_refused_and_store_nothing(config_path, entra):
    async with running_daemon(config_path, ENV) as run:
        action, form = await authorize_form(run, entra)
        forged = await run.post("/oauth/callback", data={**form, "state": "forged-state"})
        assert forged.status_code == 400
        assert "unknown or already used state" in forged.text
        assert "Nothing was stored" in forged.text
        assert await run.stored_grant("support") is None
        assert (await run.post(action, data=form)).status_code == 200
        first = await run.stored_grant("support")
        replayed = await run.post(action, data=form)
        assert replayed.status_code == 400 and "already used" in replayed.text
        assert await run.stored_grant("support") == first  # untouched by the replay


async def test_an_expired_state_is_refused(config_path, entra, monkeypatch):
    clock = Clock()
    monkeypatch.setattr("daemon.app.OAuthManager", partial(OAuthManager, now=clock))
    async with running_daemon(config_path, ENV) as run:
        action, form = await authorize_form(run, entra)
        clock.offset += 10 * 60 + 1
        late = await run.post(action, data=form)
        assert late.status_code == 400 and "longer than 10 minutes" in late.text
        assert await run.stored_grant("support") is None


async def test_a_sign_in_without_its_verifier_is_refused(config_path, entra):
    async with running_daemon(config_path, ENV) as run:
        action, form = await authorize_form(run, entra)
        pending = run.daemon.oauth.pending._by_state[form["state"]]
        del pending.started.secret_state["flow"]["code_verifier"]
        refused = await run.post(action, data=form)
        assert refused.status_code == 400 and "no PKCE verifier" in refused.text
        assert await run.stored_grant("support") is None
        assert not [r for r in entra.token_requests if r[0] == "authorization_code"]


async def test_a_provider_error_is_refused(config_path, entra):
    entra.deny = "access_denied"
    async with running_daemon(config_path, ENV) as run:
        page = await consent(run.base, "support", entra.ca_file)
        assert page.status_code == 400 and "access_denied" in page.text
        assert await run.stored_grant("support") is None
        status = run.daemon.handles["support"].status
        assert status.state is AccountState.NEEDS_AUTHENTICATION


async def test_start_needs_the_api_token_or_a_one_time_link_from_the_cli(
        entra, oauth_dovecot, tmp_path, monkeypatch, capsys):
    oauth_dovecot.add_user("ann@contoso.example")
    path = write_oauth_config(tmp_path, port=free_port(), app=entra_app(entra, ENTRA_CLIENT),
                              dovecot=oauth_dovecot, accounts=ONE, api_token=True)
    monkeypatch.setenv("TEST_OAUTH_SECRET", ENTRA_SECRET)
    async with running_daemon(path, ENV) as run:
        bare = await run.get("/oauth/start", params={"account": "support"})
        assert bare.status_code == 401
        with_token = await run.get("/oauth/start", params={"account": "support"},
                                   headers={"Authorization": "Bearer api-token-for-oauth-tests"})
        assert with_token.status_code == 302
        assert main(["authenticate", "support", "--config", str(path)]) == 0
        link = capsys.readouterr().out.strip().splitlines()[-1]
        assert link.startswith(f"{run.base}/oauth/start?account=support&link=")
        async with httpx.AsyncClient(trust_env=False) as browser:
            first = await browser.get(link)
            second = await browser.get(link)
            other = await browser.get(link.replace("account=support", "account=sales"))
        assert first.status_code == 302
        assert second.status_code == 400 and "used already" in second.text
        assert other.status_code == 400
        page = await follow_to_callback(first.headers["location"], entra.ca_file)
        assert page.status_code == 200 and "ann@contoso.example" in page.text


async def test_an_id_token_with_another_nonce_is_refused(config_path, entra):
    entra.forge_nonce = True
    async with running_daemon(config_path, ENV) as run:
        page = await consent(run.base, "support", entra.ca_file)
        assert page.status_code == 400 and "not issued for this sign-in" in page.text
        assert await run.stored_grant("support") is None
