"""Issue 9: bad API input answers 400 (or 404/415) with JSON naming the parameter, never 500."""

from __future__ import annotations

import httpx
import pytest

from tests.http.conftest import AUTH

JSON = {**AUTH, "Content-Type": "application/json"}
DEEP = b'{"text": ' + b"[" * 200 + b"]" * 200 + b"}"


@pytest.fixture
async def client(start_daemon):
    async with start_daemon(token=True) as (daemon, _):
        async with httpx.AsyncClient(base_url=daemon.http_urls[0], headers=AUTH) as client:
            yield client


@pytest.mark.parametrize(("method", "path", "body", "parameter"), [
    ("get", "/api/v1/objects/person?a.b=1", None, "a.b"),
    ("get", "/api/v1/objects/per.son", None, "per.son"),
    ("get", "/api/v1/objects/person?_limit=-1", None, "_limit"),
    ("get", "/api/v1/objects/person?_limit=99999999999999999999999", None, "_limit"),
    ("get", "/api/v1/objects/person?_limit=%D9%A1%D9%A2", None, "_limit"),  # Arabic digits
    ("get", "/api/v1/objects/person/-1", None, "object_id"),
    ("get", "/api/v1/objects/person/99999999999999999999", None, "object_id"),
    ("get", "/api/v1/objects/person/%D9%A1", None, "object_id"),
    ("get", "/api/v1/objects/person/%C2%B2", None, "object_id"),  # superscript two
    ("get", "/api/v1/textsnippets/12abc", None, "snippet_id"),
    ("post", "/api/v1/textsnippets", b'{"text": "\\ud800"}', "body"),  # lone surrogate
    ("post", "/api/v1/textsnippets", b"[1, 2]", "body"),
    ("post", "/api/v1/textsnippets", b'"text"', "body"),
    ("post", "/api/v1/textsnippets", b"{no", "body"),
    ("post", "/api/v1/textsnippets", DEEP, "body"),
    ("post", "/api/v1/textsnippets", b'{"text": "x", "count": -3}', "count"),
    ("post", "/api/v1/textsnippets", b'{"text": "x", "count": 18446744073709551615}',
     "count"),
    ("post", "/api/v1/textsnippets", b'{"te.xt": "x"}', "te.xt"),
    ("patch", "/api/v1/textsnippets/1", b'{"count": 1e400}', "body"),
    ("post", "/api/v1/errors/1/resolve", b'{"coworker": 9223372036854775808}', "coworker"),
    ("post", "/api/v1/errors/1/resolve", b'{"coworker": -4}', "coworker"),
    ("post", "/api/v1/errors/1/resolve", b"[]", "body"),
    ("post", "/api/v1/conversations/1/messages", b'{"coworker": 1, "html": "x", '
     b'"attachments": [99999999999999999999]}', "attachments"),  # orjson: a float
    ("post", "/api/v1/conversations/99999999999999999999/messages", b"{}",
     "conversation_id"),
    ("post", "/api/v1/files?filename=a%0D%0AContent-Type:%20x", b"x", "filename"),
    ("post", "/api/v1/files?filename=a%09b", b"x", "filename"),  # a tab
    ("post", "/api/v1/files?filename=..%2Fx", b"x", "filename"),
])
async def test_bad_input_is_a_400_naming_the_parameter(client, method, path, body, parameter):
    response = await client.request(method.upper(), path, content=body, headers=JSON)
    assert response.status_code == 400, response.text
    answer = response.json()
    assert answer["parameter"] == parameter, answer
    assert "Traceback" not in response.text


async def test_a_json_route_without_the_json_content_type_is_415(client):
    response = await client.post("/api/v1/textsnippets", content=b'{"text": "x"}',
                                 headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert response.json()["parameter"] == "Content-Type"


async def test_unknown_routes_and_methods_answer_json(client):
    missing = await client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and "error" in missing.json()
    wrong = await client.delete("/api/v1/objects/person")
    assert wrong.status_code == 405 and "error" in wrong.json()


async def test_an_unexpected_error_is_a_json_500_without_a_traceback(start_daemon,
                                                                    monkeypatch):
    async with start_daemon(token=True) as (daemon, _):
        def broken() -> dict:
            raise RuntimeError("secret internals")

        monkeypatch.setattr(daemon, "status", broken)
        async with httpx.AsyncClient(base_url=daemon.http_urls[0]) as client:
            response = await client.get("/status")
        assert response.status_code == 500
        assert response.json() == {"error": "internal error (see the daemon's log)"}
        assert "secret internals" not in response.text
