"""daemon.oauth.manager against the Entra emulator: refresh rules and error classes."""

from __future__ import annotations

import re
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import trio

from daemon.config import load_config
from daemon.errors import ReauthenticationRequired, TransientError
from daemon.oauth.manager import OAuthManager
from daemon.oauth.provider import ProviderUnavailable, classify
from daemon.store import AsyncStore, open_store
from tests.oauth.conftest import ENTRA_CLIENT, ENTRA_SECRET
from tests.oauth.env import Clock, entra_app, write_oauth_config

ONE = (("support", "ann@contoso.example"),)


@pytest.fixture
async def manager(entra, tmp_path: Path) -> AsyncIterator[tuple[OAuthManager, Clock]]:
    dovecot = SimpleNamespace(imap_port=1143)  # only its port goes into the config
    path = write_oauth_config(tmp_path, port=8025, app=entra_app(entra, ENTRA_CLIENT),
                              dovecot=dovecot, accounts=ONE)
    config = load_config(path, environ={"TEST_OAUTH_SECRET": ENTRA_SECRET})
    clock = Clock()
    async with AsyncStore(open_store(config.daemon.store)) as store:
        yield OAuthManager(config, store, b"k" * 32, now=clock), clock


async def sign_in(manager: OAuthManager, entra) -> None:
    url = await manager.begin("support")
    context = ssl.create_default_context(cafile=str(entra.ca_file))
    async with httpx.AsyncClient(verify=context, trust_env=False) as idp:
        page = (await idp.get(url)).text
    await manager.finish(dict(re.findall(r'name="([^"]+)" value="([^"]*)"', page)))


def refreshes(entra) -> list[tuple[str, int, str | None]]:
    return [r for r in entra.token_requests if r[0] == "refresh_token"]


async def test_tokens_come_from_memory_until_due_and_one_refresh_serves_everyone(
        manager, entra):
    oauth, clock = manager
    await sign_in(oauth, entra)
    first = await oauth.access_token("support")
    assert await oauth.access_token("support") == first and refreshes(entra) == []
    clock.offset += 3600 - 299  # less than REFRESH_AHEAD left
    tokens = []
    async with trio.open_nursery() as nursery:
        for _ in range(5):
            nursery.start_soon(lambda: _append(tokens, oauth.access_token("support")))
    assert len(refreshes(entra)) == 1
    assert len(set(tokens)) == 1 and tokens[0] != first


async def _append(into: list, awaitable) -> None:
    into.append(await awaitable)


async def test_a_5xx_is_transient_and_msal_does_not_answer_the_retry_from_its_cache(
        manager, entra):
    oauth, _ = manager
    await sign_in(oauth, entra)
    entra.fail_next(503, "temporarily_unavailable", {"Retry-After": "120"})
    with pytest.raises(TransientError):
        await oauth.access_token("support", force_refresh=True)
    assert "support" not in oauth.needs_sign_in
    await oauth.access_token("support", force_refresh=True)  # reaches Entra again
    assert [r[1] for r in refreshes(entra)] == [503, 200]


async def test_a_revoked_grant_asks_for_a_new_sign_in(manager, entra):
    oauth, _ = manager
    await sign_in(oauth, entra)
    entra.revoke("ann@contoso.example")
    with pytest.raises(ReauthenticationRequired, match="invalid_grant"):
        await oauth.access_token("support", force_refresh=True)
    assert oauth.account_notes("support")["oauth"]["authenticate"].endswith(
        "/oauth/start?account=support")
    assert oauth.sending_refusal("support") is not None


@pytest.mark.parametrize(("error", "status", "kind"), [
    ("invalid_grant", 400, "ReauthenticationRequired"),
    ("interaction_required", 400, "ReauthenticationRequired"),
    ("consent_required", 400, "ReauthenticationRequired"),
    ("invalid_client", 401, "OAuthAppFailing"),
    ("unauthorized_client", 400, "OAuthAppFailing"),
    ("temporarily_unavailable", 503, "ProviderUnavailable"),
    ("invalid_grant", 429, "ProviderUnavailable"),
    (None, 500, "ProviderUnavailable"),
])
def test_classification_reads_the_error_field_and_the_status(error, status, kind):
    found = classify(error, "AADSTS12345: whatever", status, account="a", app="m365")
    assert type(found).__name__ == kind
    assert isinstance(ProviderUnavailable("x"), TransientError)


async def test_an_app_whose_secret_date_has_passed_is_failing_from_the_start(entra, tmp_path):
    from datetime import date, timedelta

    from daemon.errors import OAuthAppFailing

    dovecot = SimpleNamespace(imap_port=1143)
    gone = date.today() - timedelta(days=1)
    path = write_oauth_config(tmp_path, port=8025, app=entra_app(entra, ENTRA_CLIENT),
                              dovecot=dovecot, accounts=ONE,
                              extra_app=f"client_secret_expires = {gone.isoformat()}")
    config = load_config(path, environ={"TEST_OAUTH_SECRET": ENTRA_SECRET})
    async with AsyncStore(open_store(config.daemon.store)) as store:
        oauth = OAuthManager(config, store, b"k" * 32)
        with pytest.raises(OAuthAppFailing, match=f"expired on {gone}"):
            await oauth.access_token("support")
        assert oauth.apps_status()[0]["client_secret_days_left"] == -1
        assert "expired" in oauth.sending_refusal("support")
    assert entra.token_requests == []


async def test_a_grant_sealed_with_another_key_asks_for_rekey_or_a_new_sign_in(manager,
                                                                              entra):
    oauth, clock = manager
    await sign_in(oauth, entra)
    other = OAuthManager(oauth.config, oauth.store, b"another key entirely", now=clock)
    with pytest.raises(ReauthenticationRequired, match="rekey-oauth"):
        await other.access_token("support")
    assert "rekey-oauth" in other.account_notes("support")["oauth"]["reason"]
