"""RemoteScorer's argument checks, input contract, clients and lifecycle."""

from __future__ import annotations

import asyncio
import email.utils
import time
from typing import Any

import httpx
import pytest

from rerank_plugins import MissingDependencyError, RemoteScorer
from rerank_plugins.client._retry import retry_after

pytestmark = pytest.mark.integration

QUERY = "where do cats sleep"
PASSAGES = ["cats sleep on sofas", "trains run on rails"]


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"base_url": "localhost:8080"}, ValueError, r"base_url must be an http:// or https://"),
        ({"base_url": 8080}, ValueError, r"got 8080\. Example: RemoteScorer\('http://localhost"),
        ({"protocol": "openai"}, ValueError, r"protocol must be one of 'auto', 'cohere', 'jina'"),
        ({"timeout": 0}, ValueError, r"timeout must be a positive number of seconds, got 0\."),
        ({"timeout": float("inf")}, ValueError, r"timeout must be a positive number"),
        ({"max_retries": -1}, ValueError, r"max_retries must be an int >= 0, got -1\."),
        ({"max_retries": True}, ValueError, r"max_retries must be an int >= 0, got True\."),
        ({"retry_backoff": -0.5}, ValueError, r"retry_backoff must be a number of seconds >= 0"),
        (
            {"max_documents_per_request": 0},
            ValueError,
            r"max_documents_per_request must be a positive int or None, got 0\.",
        ),
        ({"api_key": ""}, ValueError, r"api_key must be a non-empty string or None, got ''\."),
        ({"model": " "}, ValueError, r"model must be a non-empty string or None, got ' '\."),
    ],
    ids=[
        "no-scheme",
        "not-a-str",
        "protocol",
        "timeout-0",
        "timeout-inf",
        "retries-negative",
        "retries-bool",
        "backoff",
        "max-docs-0",
        "api-key-empty",
        "model-blank",
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, Any], error: type, match: str) -> None:
    arguments = {"base_url": "http://127.0.0.1:9", **kwargs}
    with pytest.raises(error, match=match):
        RemoteScorer(**arguments)


def test_model_defaults_to_the_base_url_and_repr_hides_the_key() -> None:
    remote = RemoteScorer("http://rerank.internal:8080/", api_key="secret-key")
    assert remote.model == "http://rerank.internal:8080"
    assert repr(remote) == (
        "RemoteScorer(base_url='http://rerank.internal:8080', protocol='auto', "
        "model='http://rerank.internal:8080')"
    )
    assert "secret" not in repr(remote)


def test_it_is_a_scorer_for_the_adapters() -> None:
    from rerank_plugins._results import Scorer

    assert isinstance(RemoteScorer("http://127.0.0.1:9"), Scorer)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda r: r.score("", PASSAGES), ValueError, r"query must be a non-empty string, got ''"),
        (lambda r: r.score(None, PASSAGES), ValueError, r"query must be a str, got NoneType"),
        (lambda r: r.score(QUERY, "one string"), TypeError, r"passages must be a list of strings"),
        (
            lambda r: r.score(QUERY, ["ok", 3]),
            TypeError,
            r"passages\[1\] must be a str, got int: 3\. Convert documents to text",
        ),
        (lambda r: r.rank(QUERY, PASSAGES, top_n=0), ValueError, r"top_n must be a positive int"),
        (
            lambda r: r.rank(QUERY, PASSAGES, score_threshold="high"),
            TypeError,
            r"score_threshold must be a number or None, got 'high'\.",
        ),
    ],
    ids=["empty-query", "none-query", "str-passages", "int-passage", "top_n-0", "threshold-str"],
)
def test_bad_inputs_fail_before_any_request(
    serve: Any, fakes: Any, call: Any, error: type, match: str
) -> None:
    server = fakes.scripted([fakes.ok])
    with serve(server.app) as url, RemoteScorer(url) as remote, pytest.raises(error, match=match):
        call(remote)
    assert server.seen == []


async def test_no_passages_means_no_request(serve: Any, fakes: Any) -> None:
    server = fakes.scripted([fakes.ok])
    with serve(server.app) as url:
        async with RemoteScorer(url) as remote:
            assert remote.score(QUERY, []) == []
            assert remote.rank(QUERY, []) == []
            assert await remote.ascore(QUERY, []) == []
            assert await remote.arank(QUERY, [], top_n=3) == []
    assert server.seen == []


def test_a_closed_scorer_refuses_requests(serve: Any, fakes: Any) -> None:
    server = fakes.scripted([fakes.ok])
    with serve(server.app) as url:
        with RemoteScorer(url) as remote:
            remote.score(QUERY, PASSAGES)
        with pytest.raises(RuntimeError, match=r"RemoteScorer\(.*\) is closed; create a new"):
            remote.score(QUERY, PASSAGES)
    assert len(server.seen) == 1


def test_one_scorer_works_across_event_loops(serve: Any, fakes: Any) -> None:
    """Regression guard: httpx async connections belong to the loop that opened them."""
    server = fakes.scripted([fakes.ok])
    with serve(server.app) as url:
        remote = RemoteScorer(url)
        first = asyncio.run(remote.ascore(QUERY, PASSAGES))
        second = asyncio.run(remote.ascore(QUERY, PASSAGES))
        remote.close()
    assert first == second == [fakes.score(QUERY, p) for p in PASSAGES]


def test_a_user_client_is_used_and_left_open(serve: Any, fakes: Any) -> None:
    server = fakes.scripted([fakes.ok])
    sent: list[httpx.Request] = []
    with serve(server.app) as url, httpx.Client(event_hooks={"request": [sent.append]}) as client:
        with RemoteScorer(url, http_client=client) as remote:
            remote.score(QUERY, PASSAGES)
        assert not client.is_closed
    assert [str(request.url) for request in sent] == [f"{url}/v1/rerank"]


async def test_a_user_async_client_is_used_and_left_open(serve: Any, fakes: Any) -> None:
    server = fakes.scripted([fakes.ok])
    sent: list[str] = []

    async def hook(request: httpx.Request) -> None:
        sent.append(str(request.url))

    with serve(server.app) as url:
        async with httpx.AsyncClient(event_hooks={"request": [hook]}) as client:
            async with RemoteScorer(url, async_http_client=client) as remote:
                await remote.ascore(QUERY, PASSAGES)
            assert not client.is_closed
    assert sent == [f"{url}/v1/rerank"]


@pytest.mark.parametrize("missing", ["httpx", "tenacity"])
def test_a_missing_dependency_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, missing: str
) -> None:
    import rerank_plugins._optional as optional

    monkeypatch.setattr(optional, "is_available", lambda module: module != missing)
    with pytest.raises(
        MissingDependencyError,
        match=rf"RemoteScorer needs '{missing}', which is not installed\. Install it with: "
        r'pip install "rerank-plugins\[remote\]"',
    ):
        RemoteScorer("http://127.0.0.1:9")


@pytest.mark.parametrize(
    ("header", "expected"),
    [(None, None), ("3", 3.0), ("0", 0.0), ("-4", 0.0), ("999", 60.0), ("soon", None)],
    ids=["absent", "seconds", "zero", "negative", "capped", "garbage"],
)
def test_retry_after_seconds(header: str | None, expected: float | None) -> None:
    assert retry_after(header) == expected


def test_retry_after_http_date() -> None:
    header = email.utils.formatdate(time.time() + 10, usegmt=True)
    delay = retry_after(header)
    assert delay is not None
    assert 8 <= delay <= 10


def test_one_scorer_is_shared_by_threads(serve: Any, fakes: Any) -> None:
    from concurrent.futures import ThreadPoolExecutor

    server = fakes.scripted([fakes.ok])
    queries = [f"{QUERY} {i}" for i in range(16)]
    with (
        serve(server.app) as url,
        RemoteScorer(url) as remote,
        ThreadPoolExecutor(max_workers=8) as pool,
    ):
        results = list(pool.map(lambda q: remote.score(q, PASSAGES), queries))
    for query, scores in zip(queries, results, strict=True):
        assert scores == [fakes.score(query, p) for p in PASSAGES]
    assert len(server.seen) == 16


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (
            lambda r: r.rank(QUERY, PASSAGES, score_threshold=float("nan")),
            r"score_threshold must be a finite number or None, got nan\.",
        ),
        (
            lambda r: r.rank(QUERY, PASSAGES, score_threshold=float("-inf")),
            r"score_threshold must be a finite number or None, got -inf\.",
        ),
        (
            lambda r: r.score(QUERY, ["ok", "cut \ud83d"]),
            r"passages\[1\] contains a lone surrogate '\\ud83d' at character 4",
        ),
    ],
    ids=["threshold-nan", "threshold-inf", "lone-surrogate"],
)
def test_non_finite_threshold_and_lone_surrogate_fail_before_any_request(
    serve: Any, fakes: Any, call: Any, match: str
) -> None:
    """Regression: a NaN threshold returned [] and a lone surrogate failed in the tokenizer."""
    server = fakes.scripted([fakes.ok])
    with (
        serve(server.app) as url,
        RemoteScorer(url) as remote,
        pytest.raises(ValueError, match=match),
    ):
        call(remote)
    assert server.seen == []


def test_importing_the_client_is_light() -> None:
    """httpx, tenacity and the wire formats' pydantic models load with the first scorer."""
    import subprocess
    import sys

    code = (
        "import sys; from rerank_plugins.client import RemoteScorer; "
        "heavy = ['httpx', 'tenacity', 'pydantic', 'rerank_plugins.wire', 'fastapi']; "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_settings_are_readable_and_read_only() -> None:
    """The settings are fixed at construction: assigning one used to be silently ignored.

    Since the transports and the retry policy share one frozen settings object, a later
    ``remote.max_retries = 0`` would change nothing; it must raise rather than mislead.
    """
    remote = RemoteScorer(
        "http://localhost:1/v1/",
        protocol="jina",
        timeout=5.0,
        max_retries=2,
        retry_backoff=0.25,
        retry_read_timeouts=True,
        max_documents_per_request=7,
    )
    assert (remote.base_url, remote.protocol, remote.model) == (
        "http://localhost:1/v1",
        "jina",
        "http://localhost:1/v1",
    )
    assert (remote.timeout, remote.max_retries, remote.retry_backoff) == (5.0, 2, 0.25)
    assert remote.retry_read_timeouts is True
    assert remote.max_documents_per_request == 7
    with pytest.raises(AttributeError):
        remote.max_retries = 0  # type: ignore[misc]
    remote.close()
