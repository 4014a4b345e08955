"""The OpenAPI description (daemon/http/openapi.py) against the app's routes and a real
daemon: every route documented, JSON errors, unknown query parameters, paging, and a
``schemathesis`` run that finds no 500 and no undocumented status code."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from daemon.http.app import create_app
from daemon.http.openapi import SPEC, openapi_path
from tests.e2e.conftest import drop, make_message, write_config
from tests.http.conftest import AUTH, TOKEN


async def test_every_api_route_is_in_the_spec_and_nothing_else(start_daemon):
    async with start_daemon(token=True) as (daemon, _):
        app = create_app(daemon)
    routes = {(openapi_path(rule.rule), method.lower())
              for rule in app.url_map.iter_rules() if rule.rule.startswith("/api/v1/")
              for method in rule.methods if method not in ("HEAD", "OPTIONS")}
    documented = {(path, method) for path, ops in SPEC["paths"].items() for method in ops}
    assert routes == documented
    assert SPEC["openapi"].startswith("3.1")


async def test_the_spec_is_served(start_daemon):
    async with start_daemon(token=True) as (daemon, _), \
            httpx.AsyncClient(base_url=daemon.http_urls[0], headers=AUTH) as client:
        served = (await client.get("/api/v1/openapi.json")).json()
    assert served == SPEC


async def test_router_errors_and_unknown_parameters_answer_json(start_daemon):
    async with start_daemon(token=True) as (daemon, _), \
            httpx.AsyncClient(base_url=daemon.http_urls[0], headers=AUTH) as client:
        missing = await client.get("/api/v1/nothing-here")
        wrong_method = await client.delete("/api/v1/failed")
        typo = await client.get("/api/v1/failed", params={"acount": "support"})
        prop = await client.get("/api/v1/objects/conversationmessage",
                                params={"subjct": "x"})
        limetype = await client.get("/api/v1/objects/persn")
    assert missing.status_code == 404 and "error" in missing.json()
    assert wrong_method.status_code == 405 and "error" in wrong_method.json()
    assert typo.status_code == 400 and typo.json()["parameter"] == "acount"
    assert prop.status_code == 400 and prop.json()["parameter"] == "subjct"
    assert limetype.status_code == 404 and "persn" in limetype.json()["error"]


async def test_lists_page_with_after_and_limit(start_daemon, tmp_path):
    async with start_daemon(token=True) as (daemon, _), \
            httpx.AsyncClient(base_url=daemon.http_urls[0], headers=AUTH) as client:
        status = daemon.handles["support"].status
        for n in (1, 2, 3):
            drop(tmp_path / "Maildir", str(n), make_message(n))
        with trio.fail_after(10):
            while status.imported < 3:
                await status.changed.wait()
        url = "/api/v1/objects/conversationmessage"
        first = (await client.get(url, params={"_limit": 2})).json()
        rest = (await client.get(url, params={"_limit": 2, "_after": first[-1]["id"]})).json()
        accounts = (await client.get("/api/v1/accounts",
                                     params={"_after": "support"})).json()
    assert [m["subject"] for m in first + rest] == [f"Request number {n}" for n in (1, 2, 3)]
    assert accounts["accounts"] == []


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_schemathesis_finds_no_500_and_no_undocumented_status(tmp_path):
    st = shutil.which("st", path=str(Path(sys.executable).parent))
    if st is None:
        pytest.skip("schemathesis is not installed (pip install -e '.[test]')")
    path = write_config(tmp_path)
    port = free_port()
    path.write_text(path.read_text().replace(
        'bind = "127.0.0.1:0"', f'bind = "127.0.0.1:{port}"\napi_token_env = "ST_TOKEN"'))
    env = {**os.environ, "ST_TOKEN": TOKEN}
    daemon = subprocess.Popen([sys.executable, "-m", "daemon", "run", "--config", str(path)],
                              env=env, cwd=tmp_path, stdout=subprocess.DEVNULL,
                              stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}"
        for line in daemon.stderr:  # the daemon logs one JSON line once it listens
            if '"daemon.started"' in line:
                break
        else:
            pytest.fail("the daemon did not start")
        result = subprocess.run(
            [st, "run", f"{base}/api/v1/openapi.json", "--url", base,
             "--checks", "not_a_server_error,status_code_conformance",
             "-H", f"Authorization: Bearer {TOKEN}", "--max-examples", "25",
             # A fresh connection per request: on a reused keep-alive connection some
             # requests of the coverage phase go unanswered (an open finding, see
             # docs/operations.md "Known issues"); that is not what this run measures.
             "-H", "Connection: close",
             "--seed", "16", "--workers", "1", "--request-timeout", "10",
             "--phases", "examples,coverage,fuzzing"],
            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    finally:
        daemon.terminate()
        daemon.wait(timeout=30)
    assert result.returncode == 0, result.stdout[-6000:]
