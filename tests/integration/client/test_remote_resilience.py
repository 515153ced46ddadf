"""RemoteScorer's retries, timeouts, request splitting and errors, against loopback servers."""

from __future__ import annotations

import socket
import time
from typing import Any

import pytest

from rerank_plugins import RemoteRerankError, RemoteScorer

pytestmark = pytest.mark.integration

QUERY = "where do cats sleep"
PASSAGES = [f"cats sleep {'z' * i}" for i in range(25)]


def _expected(fakes: Any, passages: list[str] = PASSAGES) -> list[float]:
    return [fakes.score(QUERY, p) for p in passages]


async def _score(remote: RemoteScorer, mode: str, passages: list[str]) -> list[float]:
    """``remote.score`` or ``await remote.ascore``, by ``mode``."""
    if mode == "sync":
        return remote.score(QUERY, passages)
    return await remote.ascore(QUERY, passages)


# --- retries ---------------------------------------------------------------------------------


def test_429_then_200_is_retried(serve: Any, fakes: Any, caplog: pytest.LogCaptureFixture) -> None:
    server = fakes.scripted([fakes.status(429, "slow down", {"Retry-After": "0"}), fakes.ok])
    with serve(server.app) as url, RemoteScorer(url, max_retries=2) as remote:
        assert remote.score(QUERY, PASSAGES[:4]) == _expected(fakes, PASSAGES[:4])
    assert len(server.seen) == 2
    assert "failed (status 429); retry 1 of 2 in 0.00 s" in caplog.text


async def test_503_then_200_is_retried_async(serve: Any, fakes: Any) -> None:
    server = fakes.scripted([fakes.status(503), fakes.status(502), fakes.ok])
    with serve(server.app) as url:
        async with RemoteScorer(url, max_retries=2, retry_backoff=0.01) as remote:
            assert await remote.ascore(QUERY, PASSAGES[:3]) == _expected(fakes, PASSAGES[:3])
    assert len(server.seen) == 3


def test_retry_after_is_honoured(serve: Any, fakes: Any) -> None:
    server = fakes.scripted([fakes.status(429, headers={"Retry-After": "1"}), fakes.ok])
    with serve(server.app) as url, RemoteScorer(url, retry_backoff=0) as remote:
        start = time.monotonic()
        remote.score(QUERY, PASSAGES[:2])
        elapsed = time.monotonic() - start
    assert 0.9 <= elapsed < 5


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_500_is_not_retried(serve: Any, fakes: Any, mode: str) -> None:
    """A 500 is this request's failure (a bad input, a crash): retrying triples the load."""
    server = fakes.scripted([fakes.status(500, "CUDA error: device-side assert")])
    with serve(server.app) as url:
        remote = RemoteScorer(url, max_retries=2, retry_backoff=0.01)
        with pytest.raises(
            RemoteRerankError,
            match=r"POST http://127\.0\.0\.1:\d+/v1/rerank answered 500 Internal Server Error: "
            r"CUDA error: device-side assert\. The server failed; check its logs\. Server errors "
            r"are not retried\.$",
        ) as err:
            await _score(remote, mode, PASSAGES[:2])
        await remote.aclose()
    assert err.value.status_code == 500
    assert "device-side assert" in err.value.body
    assert len(server.seen) == 1


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_503_always_fails_after_the_retries(serve: Any, fakes: Any, mode: str) -> None:
    server = fakes.scripted([fakes.status(503, "The model is still loading.")])
    with serve(server.app) as url:
        remote = RemoteScorer(url, max_retries=2, retry_backoff=0.01)
        with pytest.raises(
            RemoteRerankError,
            match=r"POST http://127\.0\.0\.1:\d+/v1/rerank answered 503 Service Unavailable "
            r"after 3 attempts: The model is still loading\. The server is unavailable; check "
            r"its logs, or retry later \(max_retries= sets how often\)\.",
        ) as err:
            await _score(remote, mode, PASSAGES[:2])
        await remote.aclose()
    assert err.value.status_code == 503
    assert len(server.seen) == 3


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_503_retry_after_is_honoured(serve: Any, fakes: Any, mode: str) -> None:
    server = fakes.scripted([fakes.status(503, headers={"Retry-After": "1"}), fakes.ok])
    with serve(server.app) as url:
        remote = RemoteScorer(url, retry_backoff=0)
        start = time.monotonic()
        assert await _score(remote, mode, PASSAGES[:2]) == _expected(fakes, PASSAGES[:2])
        elapsed = time.monotonic() - start
        await remote.aclose()
    assert 0.9 <= elapsed < 5
    assert len(server.seen) == 2


def test_429_always_names_overload(serve: Any, fakes: Any) -> None:
    server = fakes.scripted([fakes.status(429, "queue full", {"Retry-After": "0"})])
    with (
        serve(server.app) as url,
        RemoteScorer(url, max_retries=1) as remote,
        pytest.raises(RemoteRerankError, match=r"answered 429 Too Many Requests after 2 attempts"),
    ):
        remote.score(QUERY, PASSAGES[:2])
    assert len(server.seen) == 2


@pytest.mark.parametrize(
    ("api_key", "hint"),
    [
        (None, r"The server needs an API key: pass RemoteScorer\(\.\.\., api_key='\.\.\.'\)"),
        ("wrong", r"The server rejected api_key; check that it is the server's key\."),
    ],
    ids=["no-key", "wrong-key"],
)
def test_401_is_a_clear_error_without_retries(
    serve: Any, fakes: Any, api_key: str | None, hint: str
) -> None:
    server = fakes.scripted([fakes.status(401, "Missing API key.")])
    with (
        serve(server.app) as url,
        RemoteScorer(url, api_key=api_key, max_retries=5) as remote,
        pytest.raises(RemoteRerankError, match=r"401 Unauthorized: Missing API key\. " + hint) as e,
    ):
        remote.score(QUERY, PASSAGES[:2])
    assert e.value.status_code == 401
    assert len(server.seen) == 1, "a 401 must not be retried"


# --- timeouts and connection errors ----------------------------------------------------------


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_slow_server_times_out_without_a_retry(serve: Any, fakes: Any, mode: str) -> None:
    """Bug: a read timeout was retried, adding the same work to a server busy with it."""
    server = fakes.scripted([fakes.slow(1.5)])
    with serve(server.app) as url:
        remote = RemoteScorer(url, timeout=0.3, max_retries=3, retry_backoff=0)
        start = time.monotonic()
        with pytest.raises(
            RemoteRerankError,
            match=r"POST http://127\.0\.0\.1:\d+/v1/rerank timed out after 0\.3 s \(1 attempt; "
            r"ReadTimeout\)\. Raise timeout= \(now 0\.3\), or send fewer documents per request "
            r"with max_documents_per_request=\. Read timeouts are not retried, as the server is "
            r"likely still busy with the request; retry_read_timeouts=True retries them\.",
        ) as err:
            await _score(remote, mode, PASSAGES[:2])
        elapsed = time.monotonic() - start
        await remote.aclose()
    assert err.value.status_code is None
    assert elapsed < 1.4, "the attempt must stop at the timeout, not wait for the answer"
    assert len(server.seen) == 1
    assert server.seen[0].headers["x-request-timeout"] == "0.3"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_read_timeouts_are_retried_on_request(serve: Any, fakes: Any, mode: str) -> None:
    server = fakes.scripted([fakes.slow(1.5)])
    with serve(server.app) as url:
        remote = RemoteScorer(
            url, timeout=0.3, max_retries=1, retry_backoff=0, retry_read_timeouts=True
        )
        with pytest.raises(
            RemoteRerankError,
            match=r"timed out after 0\.3 s \(2 attempts; ReadTimeout\)\. Raise timeout= "
            r"\(now 0\.3\), or send fewer documents per request with "
            r"max_documents_per_request=\.$",
        ):
            await _score(remote, mode, PASSAGES[:2])
        await remote.aclose()
    assert len(server.seen) == 2


def test_nothing_listening_is_a_connection_error(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    remote = RemoteScorer(f"http://127.0.0.1:{port}", max_retries=1, retry_backoff=0)
    with pytest.raises(
        RemoteRerankError,
        match=rf"Could not reach http://127\.0\.0\.1:{port}/v1/rerank \(2 attempts; ConnectError: "
        rf".*\)\. Check that the server is running and that base_url='http://127\.0\.0\.1:{port}' "
        r"is right\.",
    ):
        remote.score(QUERY, PASSAGES[:2])
    remote.close()
    assert "retry 1 of 1" in caplog.text


# --- splitting -------------------------------------------------------------------------------


def test_413_with_a_named_limit_splits_and_remembers_it(serve: Any, fakes: Any) -> None:
    server = fakes.scripted([fakes.limited(10)])
    with serve(server.app) as url, RemoteScorer(url) as remote:
        assert remote.score(QUERY, PASSAGES) == _expected(fakes)
        assert server.sizes() == [25, 10, 10, 5]
        ranked = remote.rank(QUERY, PASSAGES, top_n=3)
    assert server.sizes()[4:] == [10, 10, 5], "the learned limit is used for the next call"
    assert [r.index for r in ranked] == [24, 23, 22]


def test_tei_batch_size_message_is_understood(serve: Any, fakes: Any) -> None:
    server = fakes.scripted([fakes.limited(8, "batch size 25 > maximum allowed batch size 8")])
    with serve(server.app) as url, RemoteScorer(url) as remote:
        assert remote.score(QUERY, PASSAGES) == _expected(fakes)
    assert server.sizes() == [25, 8, 8, 8, 1]


def test_413_without_a_named_limit_halves_until_it_fits(serve: Any, fakes: Any) -> None:
    server = fakes.scripted([fakes.limited(10, "Request Entity Too Large")])
    with serve(server.app) as url, RemoteScorer(url) as remote:
        assert remote.score(QUERY, PASSAGES) == _expected(fakes)
        sent_first = list(server.sizes())
        remote.score(QUERY, PASSAGES)
    assert sent_first[:2] == [25, 12]
    assert max(server.sizes()[len(sent_first) :]) <= 10, "the halved limit is remembered"


async def test_async_split_requests_run_concurrently_and_merge(serve: Any, fakes: Any) -> None:
    server = fakes.scripted([fakes.limited(4)])
    passages = PASSAGES * 2  # 50 documents, 13 requests of at most 4
    with serve(server.app) as url:
        async with RemoteScorer(url) as remote:
            first = await remote.ascore(QUERY, passages)
            second = await remote.arank(QUERY, passages)
    assert first == _expected(fakes, passages)
    assert sorted(server.sizes()) == sorted([50] + [4] * 12 + [2] + [4] * 12 + [2])
    assert [r.score for r in second] == sorted(first, reverse=True)


def test_configured_limit_splits_without_a_413(serve: Any, fakes: Any) -> None:
    server = fakes.scripted([fakes.limited(10)])
    with serve(server.app) as url, RemoteScorer(url, max_documents_per_request=7) as remote:
        assert remote.score(QUERY, PASSAGES) == _expected(fakes)
    assert server.sizes() == [7, 7, 7, 4]


def test_one_document_refused_with_413_is_an_error(serve: Any, fakes: Any) -> None:
    server = fakes.scripted([fakes.status(413, "Payload Too Large")])
    with (
        serve(server.app) as url,
        RemoteScorer(url) as remote,
        pytest.raises(
            RemoteRerankError,
            match=r"answered 413 Request Entity Too Large: Payload Too Large\. A document "
            r"\(or the query\) is too long for the server\.",
        ) as err,
    ):
        remote.score(QUERY, PASSAGES[:3])
    assert err.value.status_code == 413
    assert server.sizes() == [3, 1]
