"""Fixtures of the HTTP server tests: scorers, in-process apps and a real loopback server.

The ``scorer`` fixture is parametrized: ``word_overlap`` is a small deterministic scorer
that implements the scorer contract, ``tiny_bert`` is the real ``CrossEncoderScorer`` on
the tiny offline BERT (skipped until the ``tiny_bert`` fixture exists). Tests that use
``scorer`` compare the server's answers with what the scorer itself returns, so the same
cases hold for both.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest

from rerank_plugins._results import RankResult
from tests._servers import serve_in_thread

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("prometheus_client")

from fastapi import FastAPI
from fastapi.testclient import TestClient

from rerank_plugins.server.app import create_app

API_KEY = "test-key-0123"


def _words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


class WordOverlapScorer:
    """Deterministic stand-in for ``CrossEncoderScorer``: the share of query words a passage has.

    It follows the scorer contract: empty or non-str query -> ValueError, non-str passage
    -> TypeError naming its index, empty passages -> [], top_n < 1 -> ValueError.
    """

    model = "test/word-overlap"
    max_length = 512

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str], int | None]] = []

    def _check(self, query: object, passages: Sequence[object]) -> None:
        if not isinstance(query, str) or not query.strip():
            msg = f"query must be a non-empty str, got {query!r}."
            raise ValueError(msg)
        for i, passage in enumerate(passages):
            if not isinstance(passage, str):
                msg = f"passages[{i}] must be a str, got {type(passage).__name__}."
                raise TypeError(msg)

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        self._check(query, passages)
        query_words = set(_words(query))
        return [len(query_words & set(_words(p))) / max(1, len(query_words)) for p in passages]

    async def ascore(self, query: str, passages: Sequence[str]) -> list[float]:
        await asyncio.sleep(0)
        return self.score(query, passages)

    def rank(
        self,
        query: str,
        passages: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
    ) -> list[RankResult]:
        if top_n is not None and top_n < 1:
            msg = f"top_n must be a positive int or None, got {top_n!r}."
            raise ValueError(msg)
        self.calls.append((query, list(passages), top_n))
        scores = self.score(query, passages)
        order = sorted(range(len(passages)), key=lambda i: (-scores[i], i))
        results = [RankResult(i, scores[i], passages[i]) for i in order]
        if score_threshold is not None:
            results = [r for r in results if r.score >= score_threshold]
        return results[:top_n] if top_n is not None else results

    async def arank(
        self,
        query: str,
        passages: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
    ) -> list[RankResult]:
        await asyncio.sleep(0)
        return self.rank(query, passages, top_n=top_n, score_threshold=score_threshold)

    def count_tokens(self, query: str, passages: Sequence[str]) -> int:
        # [CLS] query [SEP] passage [SEP]
        return sum(len(_words(query)) + len(_words(p)) + 3 for p in passages)


class RaisingScorer(WordOverlapScorer):
    """A scorer whose ``arank`` raises ``exc``: the server must map it and keep serving."""

    model = "test/raising"

    def __init__(self, exc: BaseException) -> None:
        super().__init__()
        self.exc = exc

    async def arank(self, query: str, passages: Sequence[str], **kwargs: Any) -> list[RankResult]:
        raise self.exc


@pytest.fixture(params=["word_overlap", "tiny_bert"])
def scorer(request: pytest.FixtureRequest) -> Any:
    """The scorer under test: the stand-in, and the real scorer on the tiny BERT."""
    if request.param == "word_overlap":
        return WordOverlapScorer()
    try:
        path = request.getfixturevalue("tiny_bert")
    except pytest.FixtureLookupError:
        pytest.skip("the tiny_bert fixture (tests/conftest.py) does not exist yet")
    from rerank_plugins import get_scorer

    return get_scorer(str(path))


@pytest.fixture
def api_key() -> str:
    """The key of ``live_server`` and of apps the tests build with auth."""
    return API_KEY


@pytest.fixture
def make_raising_scorer() -> Callable[[BaseException], RaisingScorer]:
    """Build a scorer whose ``arank`` raises the given exception."""
    return RaisingScorer


@pytest.fixture
def serve() -> Callable[[FastAPI], Any]:
    """``serve(app)``: a context manager running ``app`` on loopback, yielding its URL."""
    return serve_in_thread


@pytest.fixture
def word_overlap() -> WordOverlapScorer:
    """The stand-in scorer alone, for tests about the HTTP layer rather than scores."""
    return WordOverlapScorer()


@pytest.fixture
def client(scorer: Any) -> Iterator[TestClient]:
    """An in-process client of an open app (no API key) on ``scorer``; the lifespan runs."""
    with TestClient(create_app(scorer)) as test_client:
        yield test_client


@pytest.fixture
def make_client() -> Iterator[Callable[..., TestClient]]:
    """Build in-process clients of ``create_app(**kwargs)``; all are closed after the test."""
    stack: list[TestClient] = []

    def make(*args: Any, raise_server_exceptions: bool = True, **kwargs: Any) -> TestClient:
        test_client = TestClient(
            create_app(*args, **kwargs), raise_server_exceptions=raise_server_exceptions
        )
        test_client.__enter__()
        stack.append(test_client)
        return test_client

    yield make
    for test_client in reversed(stack):
        test_client.__exit__(None, None, None)


@pytest.fixture
def live_server(scorer: Any) -> Iterator[str]:
    """Base URL of a real uvicorn server on loopback, serving ``scorer`` with ``API_KEY``."""
    with serve_in_thread(create_app(scorer, api_key=API_KEY)) as base_url:
        yield base_url
