"""Issue 9, "nothing open by default": who the API answers, with and without a token."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from daemon.http.app import _is_loopback_host
from tests.http.conftest import AUTH, a_conversation

EVIL = {"Origin": "https://evil.example", "Content-Type": "text/plain"}


@pytest.mark.parametrize(("authority", "loopback"), [
    ("localhost", True), ("LOCALHOST:8025", True), ("127.0.0.1", True),
    ("127.9.9.9:80", True), ("[::1]", True), ("[::1]:8025", True),
    ("evil.example", False), ("localhost.evil.example", False), ("10.0.0.1:8025", False),
    ("[::1", False), ("[::1]x", False), ("127.0.0.1:80x", False), ("", False),
    ("::1", False), ("[2001:db8::1]:80", False),
])
def test_loopback_hosts(authority, loopback):
    assert _is_loopback_host(authority) is loopback


async def test_without_a_token_a_cross_site_text_plain_send_is_refused(start_daemon,
                                                                       tmp_path: Path):
    async with start_daemon() as (daemon, _):
        conversation, coworker = await a_conversation(daemon, tmp_path)
        body = json.dumps({"coworker": coworker, "html": "<p>Hi</p>"})
        url = f"/api/v1/conversations/{conversation}/messages"
        async with httpx.AsyncClient(base_url=daemon.http_urls[0]) as client:
            cross_site = await client.post(url, content=body, headers=EVIL)
            assert cross_site.status_code == 403
            assert cross_site.json()["parameter"] == "Origin"
            same_host_text = await client.post(url, content=body,
                                               headers={"Content-Type": "text/plain"})
            assert same_host_text.status_code == 415  # a form post cannot send JSON
            rebound = await client.post(url, content=body, headers={
                "Host": "attacker.example:8025", "Content-Type": "application/json"})
            assert rebound.status_code == 403 and rebound.json()["parameter"] == "Host"
            assert (await client.get("/status", headers={"Host": "attacker.example"})
                    ).status_code == 403
            assert (await client.get("/livez", headers={"Host": "attacker.example"})
                    ).status_code == 200  # probes answer whoever asks
            assert (await client.get("/readyz", headers={"Host": "attacker.example"})
                    ).status_code == 200
            assert await daemon.store.run(lambda tx: tx.find("conversationmessage", {
                "direction": "outgoing"})) == []  # nothing was queued
            ok = await client.post(url, content=body, headers={
                "Content-Type": "application/json", "Origin": "http://localhost:3000"})
            assert ok.status_code == 202


async def test_with_a_token_the_same_routes_work_for_a_correct_request(start_daemon,
                                                                       tmp_path: Path):
    async with start_daemon(token=True) as (daemon, _):
        conversation, coworker = await a_conversation(daemon, tmp_path)
        body = {"coworker": coworker, "html": "<p>Hi</p>"}
        url = f"/api/v1/conversations/{conversation}/messages"
        async with httpx.AsyncClient(base_url=daemon.http_urls[0]) as client:
            sent = await client.post(url, json=body, headers={
                **AUTH, "Host": "postroom.internal.example"})
            assert sent.status_code == 202 and len(sent.json()["outbox"]) == 1
            snippet = await client.post("/api/v1/textsnippets", json={"text": "Thanks!"},
                                        headers=AUTH)
            assert snippet.status_code == 201
            text_plain = await client.post(url, content=json.dumps(body), headers={
                **AUTH, "Content-Type": "text/plain"})
            assert text_plain.status_code == 415  # token or not
            no_token = await client.post(url, json=body)
            assert no_token.status_code == 401
            assert no_token.headers["connection"] == "close"
