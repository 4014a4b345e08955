"""One mailbox's Microsoft Graph HTTP client: tokens, the immutable-id header, throttling.

Graph throttles per app and mailbox: at most 4 concurrent requests ("MailboxConcurrency",
docs-contrib: concepts/throttling-limits), answered beyond that with 429 and a
``Retry-After`` in seconds; 503 may carry one too. Every client of one mailbox (the
intake actor's and the outbox's sending sessions) therefore shares one
:class:`trio.CapacityLimiter` of 4 and one :class:`Throttle` (:func:`mailbox_gate`), and
when Graph says wait, every request of the mailbox waits (the throttle is the mailbox's,
not the request's) — the trade-off is that one throttled call delays the mailbox's other
calls, which is what Graph asks for.

``Prefer: IdType="ImmutableId"`` goes on every request: ids then survive moves between
folders, which our source keys rely on (docs-contrib: concepts/outlook-immutable-id).

Errors are translated here and only here (:func:`_raise_for`): 401/403 → ``AuthError``;
429/5xx and network failures → ``GraphTransient`` (a ``TransientError``), after
``max_attempts`` tries; other 4xx → ``GraphRequestError`` (a ``PermanentError``) with
Graph's error code. The token provider is a Protocol: the OAuth package supplies it;
tests pass a fixed token.
"""

from __future__ import annotations

__all__ = ["MAILBOX_CONCURRENCY", "GraphClient", "GraphRequestError", "GraphTransient",
           "GraphTokens", "Throttle", "TokenProvider", "static_token"]

import math
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import httpx
import structlog
import trio

from daemon.errors import AuthError, PermanentError, TransientError

if TYPE_CHECKING:
    from daemon.config import Account, OAuthApp

log = structlog.get_logger("postroom.graph")

#: Graph's per app-and-mailbox concurrency limit for Outlook resources.
MAILBOX_CONCURRENCY = 4
PREFER_IMMUTABLE = 'IdType="ImmutableId"'
#: When Graph throttles without saying for how long.
DEFAULT_RETRY_AFTER = 5.0
MAX_RETRY_AFTER = 300.0
#: Retried by default: throttling, server errors, and (0) network failures.
RETRIED = frozenset({0, 429, 500, 502, 503, 504})


class TokenProvider(Protocol):
    """Returns a valid access token for the mailbox, refreshing it when needed.

    Raises ``AuthError`` when consent is gone; a checkpoint.
    """

    def __call__(self) -> Awaitable[str]: ...


#: Where a Graph account's tokens come from: ``(account, app) -> TokenProvider``. The
#: daemon's is :meth:`daemon.oauth.manager.OAuthManager.graph_tokens`; tests pass fixed ones.
GraphTokens = Callable[["Account", "OAuthApp"], TokenProvider]


def static_token(token: str) -> TokenProvider:
    """A provider that always answers ``token`` (tests, the emulator)."""
    async def provide() -> str:
        await trio.lowlevel.checkpoint()
        return token
    return provide


class GraphRequestError(PermanentError):
    """Graph refused the request for good (4xx other than 401/403/429)."""

    def __init__(self, message: str, *, status: int, code: str, account: str | None = None
                 ) -> None:
        super().__init__(message, account=account)
        self.status, self.code = status, code


class GraphTransient(TransientError):
    """Graph is throttling, failing (5xx) or unreachable; ``status`` 0 for the network."""

    def __init__(self, message: str, *, status: int, code: str = "",
                 account: str | None = None) -> None:
        super().__init__(message, account=account)
        self.status, self.code = status, code


@dataclass(eq=False)
class Throttle:
    """What ``/status`` and ``/metrics`` show about a mailbox's throttling."""

    throttled: int = 0          # 429/503 answers so far
    waiting_until: float = 0.0  # trio time until which the mailbox waits (0: not waiting)
    in_flight: int = 0
    peak_in_flight: int = 0

    def as_json(self) -> dict[str, Any]:
        waiting = max(0.0, self.waiting_until - trio.current_time())
        return {"throttled": self.throttled, "throttled_for_seconds": round(waiting, 1),
                "in_flight": self.in_flight, "peak_in_flight": self.peak_in_flight}


class MailboxGate:
    """What all clients of one mailbox share: the 4-request limiter and the throttle."""

    def __init__(self) -> None:
        self.limiter = trio.CapacityLimiter(MAILBOX_CONCURRENCY)
        self.throttle = Throttle()


#: Per Trio run (a gate's times are that run's clock), mailbox -> gate while in use.
_GATES: trio.lowlevel.RunVar[weakref.WeakValueDictionary[tuple[str, str], MailboxGate]] = (
    trio.lowlevel.RunVar("postroom_graph_gates"))


def mailbox_gate(base_url: str, mailbox: str) -> MailboxGate:
    """The gate of ``mailbox`` at ``base_url``, shared while any client holds it.

    Must be called inside a Trio run.
    """
    try:
        gates = _GATES.get()
    except LookupError:
        gates = weakref.WeakValueDictionary()
        _GATES.set(gates)
    key = (base_url.rstrip("/"), mailbox.lower())
    gate = gates.get(key)
    if gate is None:
        gate = gates[key] = MailboxGate()
    return gate


class GraphClient:
    """Requests for one mailbox (``/users/{mailbox}``); see the module docstring.

    Args:
        base_url: the app's ``graph_base_url`` (``https://graph.microsoft.com/v1.0``).
        mailbox: the mailbox's address (the account's ``email``).
        token: the access-token provider.
        account: the account id, for errors and logs.
        transport: an httpx transport (tests: ``httpx.ASGITransport`` for MockClock).
        max_attempts: tries per request for the statuses in ``retry_statuses``.
        retry_statuses: what is retried here (0 = a network failure); sending retries only
            429, because a 5xx or a lost connection may hide an accepted message.
        timeout: per-request timeout in seconds.
    """

    def __init__(self, base_url: str, mailbox: str, token: TokenProvider, *,
                 account: str, transport: httpx.AsyncBaseTransport | None = None,
                 max_attempts: int = 6, timeout: float = 60.0,
                 retry_statuses: frozenset[int] = RETRIED) -> None:
        self.base_url = base_url.rstrip("/")
        self.mailbox = mailbox
        self.account = account
        self.max_attempts = max_attempts
        self.retry_statuses = retry_statuses
        self._gate = mailbox_gate(self.base_url, mailbox)
        self.throttle = self._gate.throttle
        #: Called whenever Graph throttles (the actor shows it in /status at once).
        self.on_throttle: Callable[[Throttle], None] = lambda throttle: None
        self._token = token
        self._limiter = self._gate.limiter
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout,
                                       follow_redirects=False)

    def __repr__(self) -> str:
        return f"<GraphClient {self.base_url} {self.mailbox}>"

    async def aclose(self) -> None:
        await self._http.aclose()

    def user_url(self, path: str) -> str:
        """``{base}/users/{mailbox}{path}`` with the mailbox quoted."""
        return f"{self.base_url}/users/{quote(self.mailbox)}{path}"

    async def request(self, method: str, url: str, *, json: Any = None,
                      content: bytes | None = None, headers: Mapping[str, str] | None = None,
                      params: Mapping[str, str] | None = None, authorize: bool = True,
                      ) -> httpx.Response:
        """Send one request with retries; return a 2xx response.

        A checkpoint. Cancelling abandons the request in flight.

        Raises:
            AuthError: 401/403 (the token was refused or consent is missing).
            GraphTransient: 429/5xx/network failures after ``max_attempts`` tries.
            GraphRequestError: any other 4xx.
        """
        for attempt in range(1, self.max_attempts + 1):
            await self._wait_out_throttle()
            try:
                response = await self._send(method, url, json=json, content=content,
                                            headers=headers, params=params,
                                            authorize=authorize)
            except httpx.HTTPError as exc:
                if attempt == self.max_attempts or 0 not in self.retry_statuses:
                    raise GraphTransient(f"Graph unreachable: {type(exc).__name__}",
                                         status=0, account=self.account) from exc
                await trio.sleep(min(2.0 ** attempt, 30.0))
                continue
            if response.status_code < 400:
                return response
            if response.status_code in self.retry_statuses and attempt < self.max_attempts:
                self._throttled(response)
                continue
            raise _error_for(response, self.account)
        raise AssertionError("unreachable")

    async def json(self, method: str, url: str, **kwargs: Any) -> Any:
        """:meth:`request`, returning the decoded JSON body (None when empty)."""
        response = await self.request(method, url, **kwargs)
        return response.json() if response.content else None

    async def _send(self, method: str, url: str, *, json: Any, content: bytes | None,
                    headers: Mapping[str, str] | None, params: Mapping[str, str] | None,
                    authorize: bool) -> httpx.Response:
        async with self._limiter:
            self.throttle.in_flight += 1
            self.throttle.peak_in_flight = max(self.throttle.peak_in_flight,
                                               self.throttle.in_flight)
            try:
                all_headers = {"Prefer": PREFER_IMMUTABLE, **(headers or {})}
                if authorize:
                    all_headers["Authorization"] = f"Bearer {await self._token()}"
                return await self._http.request(method, url, json=json, content=content,
                                                headers=all_headers, params=params)
            finally:
                self.throttle.in_flight -= 1

    def _throttled(self, response: httpx.Response) -> None:
        wait = retry_after(response.headers.get("retry-after"),
                           DEFAULT_RETRY_AFTER if response.status_code in (429, 503) else 1.0)
        self.throttle.throttled += 1
        self.throttle.waiting_until = max(self.throttle.waiting_until,
                                          trio.current_time() + wait)
        log.warning("graph.throttled", status=response.status_code, retry_after=wait,
                    account=self.account)
        self.on_throttle(self.throttle)

    async def _wait_out_throttle(self) -> None:
        await trio.sleep_until(self.throttle.waiting_until)

    async def batch(self, requests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        """POST ``$batch``; retry the items Graph throttled (each item's Retry-After).

        Returns the responses by request id. A checkpoint; raises as :meth:`request`.
        """
        pending = {r["id"]: r for r in requests}
        done: dict[str, dict[str, Any]] = {}
        for attempt in range(1, self.max_attempts + 1):
            body = await self.json("POST", f"{self.base_url}/$batch",
                                   json={"requests": list(pending.values())})
            waits = []
            for item in body["responses"]:
                status = int(item["status"])
                if status in (429, 503) and attempt < self.max_attempts:
                    headers = {k.lower(): v for k, v in (item.get("headers") or {}).items()}
                    waits.append(retry_after(headers.get("retry-after"), DEFAULT_RETRY_AFTER))
                    continue
                done[item["id"]] = item
                pending.pop(item["id"], None)
            if not pending:
                return done
            wait = max(waits)
            self.throttle.throttled += len(waits)
            self.throttle.waiting_until = max(self.throttle.waiting_until,
                                              trio.current_time() + wait)
            self.on_throttle(self.throttle)
        raise GraphTransient("Graph throttled $batch items too often", status=429,
                             account=self.account)


def retry_after(value: str | None, default: float) -> float:
    """Seconds from a ``Retry-After`` header (seconds only, as Graph sends), bounded."""
    try:
        seconds = float(value) if value is not None else default
    except ValueError:
        seconds = default
    if not math.isfinite(seconds) or seconds < 0:
        seconds = default
    return min(seconds, MAX_RETRY_AFTER)


def _error_for(response: httpx.Response, account: str) -> Exception:
    code, message = _graph_error(response)
    status = response.status_code
    text = f"Graph {status} {code}: {message}"[:300]
    if status in (401, 403):
        return AuthError(text, account=account)
    if status == 429 or status >= 500:
        return GraphTransient(text, status=status, code=code, account=account)
    return GraphRequestError(text, status=status, code=code, account=account)


def _graph_error(response: httpx.Response) -> tuple[str, str]:
    try:
        error = response.json().get("error", {})
        return str(error.get("code", "")), str(error.get("message", ""))
    except ValueError:
        return "", response.text[:200]

