"""Fixtures of the RemoteScorer tests: real loopback HTTP servers and small fake rerank APIs.

Every server here is a real uvicorn server on a free 127.0.0.1 port, run in a thread, so
RemoteScorer goes through real sockets, timeouts and status codes; nothing leaves loopback.
The fake servers imitate the wire formats of TEI, vLLM, Jina, Infinity and Cohere and
record every request they get, so tests can check what was sent and how often.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

pytest.importorskip("httpx")
pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from tests._servers import serve_in_thread

API_KEY = "client-test-key-0123"


@pytest.fixture
def api_key() -> str:
    """The key ``real_server`` requires."""
    return API_KEY


@pytest.fixture(scope="module")
def local_scorer(tiny_bert: Any) -> Any:
    """The real scorer on the tiny offline BERT (shared with the server under test)."""
    from rerank_plugins import get_scorer

    return get_scorer(str(tiny_bert))


@pytest.fixture(scope="module")
def real_server(local_scorer: Any) -> Iterator[str]:
    """Base URL of our real server (``create_app``) on ``local_scorer``, with ``API_KEY``."""
    from rerank_plugins.server.app import create_app

    with serve_in_thread(create_app(local_scorer, api_key=API_KEY)) as base_url:
        yield base_url


@pytest.fixture
def serve() -> Callable[[Any], Any]:
    """``with serve(app) as base_url:`` runs ``app`` on loopback for the block."""
    return serve_in_thread


def fake_score(query: str, document: str) -> float:
    """A deterministic score: shared words, with the length breaking ties (unique per text)."""
    shared = len(set(query.lower().split()) & set(document.lower().split()))
    return round(shared + len(document) / 1000, 6)


@dataclass
class Seen:
    """One request a fake server received."""

    path: str
    body: Any
    headers: dict[str, str]


@dataclass
class FakeServer:
    """A fake rerank API and what it received."""

    app: FastAPI
    seen: list[Seen] = field(default_factory=list)

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]

    def sizes(self) -> list[int]:
        return [len(s.body.get("documents") or s.body.get("texts") or []) for s in self.seen]


def _ranked(query: str, texts: list[str]) -> list[tuple[int, float]]:
    scores = [(i, fake_score(query, t)) for i, t in enumerate(texts)]
    return sorted(scores, key=lambda pair: -pair[1])


def _new_fake() -> FakeServer:
    app = FastAPI()
    fake = FakeServer(app)

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Response:
        raw = await request.body()
        try:
            body = await request.json() if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        fake.seen.append(Seen(request.url.path, body, dict(request.headers)))
        return await call_next(request)

    return fake


class _TEIBody(BaseModel):
    query: str
    texts: list[str]
    truncate: bool | None = None
    raw_scores: bool = False
    return_text: bool = False


class _CohereBody(BaseModel):
    query: str
    documents: list[str]
    model: str | None = None
    top_n: int | None = None
    return_documents: bool | None = None


def make_tei() -> FakeServer:
    """Hugging Face TEI: ``POST /rerank`` with ``texts``; a bare list of ``{index, score}``."""
    fake = _new_fake()

    @fake.app.post("/rerank")
    async def rerank(body: _TEIBody) -> Any:
        ranked = _ranked(body.query, body.texts)
        return [{"index": i, "score": s} for i, s in ranked]

    return fake


def make_vllm() -> FakeServer:
    """vLLM: ``/rerank``, ``/v1/rerank`` and ``/v2/rerank`` with documents always returned."""
    fake = _new_fake()

    async def rerank(body: _CohereBody) -> Any:
        ranked = _ranked(body.query, body.documents)
        if body.top_n:
            ranked = ranked[: body.top_n]
        return {
            "id": "rerank-1",
            "model": body.model or "BAAI/bge-reranker-base",
            "usage": {"total_tokens": 42},
            "results": [
                {"index": i, "document": {"text": body.documents[i]}, "relevance_score": s}
                for i, s in ranked
            ],
        }

    for path in ("/rerank", "/v1/rerank", "/v2/rerank"):
        fake.app.post(path)(rerank)
    return fake


def make_jina(api_key: str) -> FakeServer:
    """Jina: ``POST /v1/rerank`` needs a model and a bearer key."""
    fake = _new_fake()

    @fake.app.post("/v1/rerank")
    async def rerank(body: _CohereBody, request: Request) -> Any:
        if request.headers.get("authorization") != f"Bearer {api_key}":
            return JSONResponse({"detail": "Unauthorized"}, status_code=401)
        if not body.model:
            return JSONResponse({"detail": "model is required"}, status_code=422)
        ranked = _ranked(body.query, body.documents)
        results = []
        for i, s in ranked:
            item: dict[str, Any] = {"index": i, "relevance_score": s}
            if body.return_documents is not False:
                item["document"] = {"text": body.documents[i]}
            results.append(item)
        return {"model": body.model, "usage": {"total_tokens": 7}, "results": results}

    return fake


def make_infinity() -> FakeServer:
    """Infinity without a URL prefix: ``POST /rerank`` in the Cohere v1 shape only."""
    fake = _new_fake()

    @fake.app.post("/rerank")
    async def rerank(body: _CohereBody) -> Any:
        ranked = _ranked(body.query, body.documents)
        return {
            "object": "rerank",
            "model": body.model or "mixedbread-ai/mxbai-rerank-xsmall-v1",
            "usage": {"prompt_tokens": 5, "total_tokens": 5},
            "id": "infinity-1",
            "created": 0,
            "results": [{"relevance_score": s, "index": i, "document": None} for i, s in ranked],
        }

    return fake


def make_cohere() -> FakeServer:
    """Cohere v2: ``POST /v2/rerank`` needs a model; errors are ``{"message": ...}``."""
    fake = _new_fake()

    @fake.app.post("/v2/rerank")
    async def rerank(body: _CohereBody) -> Any:
        if not body.model:
            return JSONResponse({"message": "invalid request: model must be set"}, 400)
        ranked = _ranked(body.query, body.documents)
        return {
            "id": "07734bd2",
            "results": [{"index": i, "relevance_score": s} for i, s in ranked],
            "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}},
        }

    return fake


def make_scripted(answers: list[Callable[[list[str], str], Any]]) -> FakeServer:
    """``POST /v1/rerank`` answering request k with ``answers[min(k, len-1)](documents, query)``.

    An answer returns a Response, or a coroutine that does (for slow answers).
    """
    fake = _new_fake()

    @fake.app.post("/v1/rerank")
    async def rerank(body: _CohereBody) -> Any:
        answer = answers[min(len(fake.seen) - 1, len(answers) - 1)]
        result = answer(body.documents, body.query)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    return fake


def ok(documents: list[str], query: str) -> Response:
    """A correct Cohere-shaped answer, best first."""
    ranked = _ranked(query, documents)
    return JSONResponse({"results": [{"index": i, "relevance_score": s} for i, s in ranked]})


def shuffled(documents: list[str], query: str) -> Response:
    """A correct answer with the results in random order (not best first, not input order)."""
    ranked = _ranked(query, documents)
    random.Random(len(documents)).shuffle(ranked)
    return JSONResponse({"results": [{"index": i, "relevance_score": s} for i, s in ranked]})


def status(code: int, message: str = "nope", headers: dict[str, str] | None = None) -> Any:
    """An answer with ``code`` and our server's error shape."""

    def answer(documents: list[str], query: str) -> Response:
        body = {"error": {"type": "x", "message": message, "code": code}, "detail": message}
        return JSONResponse(body, status_code=code, headers=headers)

    return answer


def limited(limit: int, message: str | None = None) -> Any:
    """Answer 413 above ``limit`` documents (with our server's message by default)."""

    def answer(documents: list[str], query: str) -> Response:
        if len(documents) > limit:
            text = message or (
                f"Too many documents: got {len(documents)}, the limit is "
                f"max_documents={limit}. Send fewer documents per request."
            )
            return JSONResponse({"detail": text}, status_code=413)
        return ok(documents, query)

    return answer


def slow(seconds: float) -> Any:
    """Answer correctly after ``seconds``."""

    async def answer(documents: list[str], query: str) -> Response:
        await asyncio.sleep(seconds)
        return ok(documents, query)

    return answer


@pytest.fixture
def fakes() -> Any:
    """The fake servers' factories and scripted answers, for tests to build servers from."""
    from types import SimpleNamespace

    return SimpleNamespace(
        tei=make_tei,
        vllm=make_vllm,
        jina=make_jina,
        infinity=make_infinity,
        cohere=make_cohere,
        scripted=make_scripted,
        ok=ok,
        shuffled=shuffled,
        status=status,
        limited=limited,
        slow=slow,
        score=fake_score,
    )
