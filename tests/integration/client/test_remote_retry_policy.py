"""RemoteScorer's retry policy, transport by transport, with ``httpx.MockTransport``.

Issue 9 item 4: retry what could not have started on the server (connection errors) and
what the server asks to be retried (429, 503 with ``Retry-After``); do not retry a read
timeout unless asked (``retry_read_timeouts``), since the server is busy with that request.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from rerank_plugins import RemoteRerankError, RemoteScorer

pytestmark = pytest.mark.integration

URL = "http://rerank.test"
QUERY = "where do cats sleep"
PASSAGES = ["cats sleep on sofas", "dogs bark"]
OK = {"results": [{"index": 1, "relevance_score": 0.1}, {"index": 0, "relevance_score": 0.9}]}

Outcome = Exception | httpx.Response


def scripted(outcomes: list[Outcome]) -> tuple[list[httpx.Request], Callable[..., Any]]:
    """A transport handler raising or answering ``outcomes[k]`` for request k (the last repeats)."""
    seen: list[httpx.Request] = []

    def handle(request: httpx.Request) -> httpx.Response:
        outcome = outcomes[min(len(seen), len(outcomes) - 1)]
        seen.append(request)
        if isinstance(outcome, Exception):
            raise outcome
        # A fresh copy: a response object can be sent by one client only.
        return httpx.Response(outcome.status_code, headers=outcome.headers, content=outcome.content)

    return seen, handle


def status(code: int, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(code, json={"detail": f"status {code}"}, headers=headers)


async def score(mode: str, outcomes: list[Outcome], **options: Any) -> tuple[Any, int]:
    """Score through a mock transport, sync or async; return (scores or error, requests sent)."""
    seen, handle = scripted(outcomes)
    options = {"max_retries": 2, "retry_backoff": 0, "protocol": "jina", **options}
    result: Any
    if mode == "sync":
        client = httpx.Client(transport=httpx.MockTransport(handle))
        with RemoteScorer(URL, http_client=client, **options) as remote:
            try:
                result = remote.score(QUERY, PASSAGES)
            except RemoteRerankError as err:
                result = err
    else:
        async_client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
        async with RemoteScorer(URL, async_http_client=async_client, **options) as remote:
            try:
                result = await remote.ascore(QUERY, PASSAGES)
            except RemoteRerankError as err:
                result = err
        await async_client.aclose()
    return result, len(seen)


MODES = pytest.mark.parametrize("mode", ["sync", "async"])


@MODES
@pytest.mark.parametrize(
    "failure",
    [
        httpx.ConnectError("connection refused"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.PoolTimeout("no free connection"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        status(429),
        status(502),
        status(503, {"Retry-After": "0"}),
    ],
    ids=[
        "connect-error",
        "connect-timeout",
        "pool-timeout",
        "stale-connection",
        "429",
        "502",
        "503",
    ],
)
async def test_retried_until_it_works(mode: str, failure: Outcome) -> None:
    result, sent = await score(mode, [failure, httpx.Response(200, json=OK)])

    assert result == [0.9, 0.1]
    assert sent == 2


@MODES
@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("timed out"), status(504), status(500), status(501)],
    ids=["read-timeout", "504", "500", "501"],
)
async def test_not_retried_by_default(mode: str, failure: Outcome) -> None:
    """Bug: a read timeout (and a 5xx) was retried, adding the same work to a busy server."""
    result, sent = await score(mode, [failure, httpx.Response(200, json=OK)])

    assert isinstance(result, RemoteRerankError)
    assert sent == 1


@MODES
@pytest.mark.parametrize(
    "failure", [httpx.ReadTimeout("timed out"), status(504)], ids=["read-timeout", "504"]
)
async def test_read_timeouts_retried_on_request(mode: str, failure: Outcome) -> None:
    result, sent = await score(
        mode, [failure, httpx.Response(200, json=OK)], retry_read_timeouts=True
    )

    assert result == [0.9, 0.1]
    assert sent == 2


@MODES
async def test_504_names_the_option(mode: str) -> None:
    result, _ = await score(mode, [status(504)])

    assert isinstance(result, RemoteRerankError)
    assert str(result) == (
        "POST http://rerank.test/v1/rerank answered 504 Gateway Timeout: status 504. The "
        "answer did not come in time; raise the server's or the gateway's timeout, send fewer "
        "documents per request (max_documents_per_request=), or pass retry_read_timeouts=True "
        "to retry."
    )


def test_retry_after_is_capped_at_60_s(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server asking for an hour must not stall the caller for an hour."""
    waits: list[float] = []
    monkeypatch.setattr("time.sleep", waits.append)  # tenacity sleeps with time.sleep
    seen, handle = scripted([status(429, {"Retry-After": "3600"}), httpx.Response(200, json=OK)])
    client = httpx.Client(transport=httpx.MockTransport(handle))

    with RemoteScorer(URL, http_client=client, protocol="jina") as remote:
        assert remote.score(QUERY, PASSAGES) == [0.9, 0.1]

    assert len(seen) == 2
    assert waits == [60.0]


@MODES
async def test_the_timeout_is_sent_as_x_request_timeout(mode: str) -> None:
    """Our server drops the work when this client's timeout passes (503/504)."""
    seen, handle = scripted([httpx.Response(200, json=OK)])
    if mode == "sync":
        client = httpx.Client(transport=httpx.MockTransport(handle))
        with RemoteScorer(URL, http_client=client, timeout=12.5) as remote:
            remote.score(QUERY, PASSAGES)
    else:
        async_client = httpx.AsyncClient(transport=httpx.MockTransport(handle))
        async with RemoteScorer(URL, async_http_client=async_client, timeout=12.5) as remote:
            await remote.ascore(QUERY, PASSAGES)
        await async_client.aclose()

    assert seen[0].headers["x-request-timeout"] == "12.5"


def test_a_timeout_header_of_the_caller_wins() -> None:
    seen, handle = scripted([httpx.Response(200, json=OK)])
    client = httpx.Client(transport=httpx.MockTransport(handle))
    headers = {"x-request-timeout": "5"}
    with RemoteScorer(URL, http_client=client, headers=headers, protocol="jina") as remote:
        remote.score(QUERY, PASSAGES)

    assert seen[0].headers.get_list("x-request-timeout") == ["5"]


def test_retry_read_timeouts_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match=r"retry_read_timeouts must be True or False, got 1\."):
        RemoteScorer(URL, retry_read_timeouts=1)  # type: ignore[arg-type]
