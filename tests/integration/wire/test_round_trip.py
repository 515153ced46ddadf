"""Round trips per dialect: our client and our server, on the tiny scorer, give its results.

Two layers: the dialect objects alone (``request_body`` posted to every path of our server
that takes that body, the answer read back with ``read_scores`` and parsed as the real
service's documented response), and ``RemoteScorer`` speaking each protocol to our server.
Both must return exactly what the local scorer returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx
from fastapi.testclient import TestClient

from rerank_plugins import RemoteScorer
from rerank_plugins.server._routes import RERANK_ROUTES
from rerank_plugins.server.app import create_app
from rerank_plugins.wire import Dialect, dialect_names, get_dialect
from tests._servers import serve_in_thread

pytestmark = pytest.mark.integration

QUERY = "which animal barks"
PASSAGES = [
    "the dog barks at night",
    "cats purr and sleep",
    "a dog and a wolf both howl",
    "stock prices fell today",
    "the puppy barked twice",
]
CLIENT_PROTOCOLS = ["cohere", "jina", "vllm", "tei", "infinity"]


@pytest.fixture(scope="module")
def local_scorer(tiny_bert: Any) -> Any:
    """The real scorer on the tiny offline BERT, served and compared against."""
    from rerank_plugins import get_scorer

    return get_scorer(str(tiny_bert))


@pytest.fixture
def server(local_scorer: Any) -> Iterator[TestClient]:
    """Our app on ``local_scorer``, in process (the lifespan runs)."""
    with TestClient(create_app(local_scorer)) as client:
        yield client


def _server_paths(dialect: Dialect[Any]) -> list[str]:
    """Every path of our server whose body union takes this dialect's request model."""
    return [
        route.path
        for route in RERANK_ROUTES
        if any(served.request_model is dialect.request_model for served in route.dialects)
    ]


@pytest.fixture(scope="module")
def live_server(local_scorer: Any) -> Iterator[str]:
    """Base URL of our app on ``local_scorer`` served by uvicorn on loopback."""
    with serve_in_thread(create_app(local_scorer)) as base_url:
        yield base_url


def _base_url(root: str, protocol: str) -> str:
    """Where RemoteScorer must point to reach our route for ``protocol``."""
    return f"{root}/infinity" if protocol == "infinity" else root


@pytest.mark.parametrize("name", dialect_names())
def test_every_dialect_is_served_somewhere(name: str) -> None:
    assert _server_paths(get_dialect(name))


@pytest.mark.parametrize("name", dialect_names())
def test_dialect_round_trip_on_every_path_that_serves_it(
    server: TestClient, local_scorer: Any, name: str
) -> None:
    dialect = get_dialect(name)
    expected = local_scorer.score(QUERY, PASSAGES)

    for path in _server_paths(dialect):
        response = server.post(path, json=dialect.request_body(QUERY, PASSAGES, "any-model"))

        assert response.status_code == 200, (path, response.text)
        payload = response.json()
        assert dialect.read_scores(payload, len(PASSAGES)) == pytest.approx(expected, abs=1e-6)
        # Our answer reads as the real service's documented response.
        dialect.response_model.model_validate(payload)


@pytest.mark.parametrize("name", dialect_names())
def test_dialect_reply_converts_rank_results(local_scorer: Any, name: str) -> None:
    """`reply` keeps the scorer's order and scores; `read_scores` maps them back by index."""
    dialect = get_dialect(name)
    body = dialect.request_model.model_validate(dialect.request_body(QUERY, PASSAGES, None))
    inputs = dialect.inputs(body)
    results = local_scorer.rank(inputs.query, inputs.texts, top_n=inputs.top_n)

    reply = dialect.reply(body, results, "test/model", 42)

    items = reply.content if isinstance(reply.content, list) else reply.content["results"]
    assert [item["index"] for item in items] == [result.index for result in results]
    by_index = {result.index: result.score for result in results}
    assert dialect.read_scores(reply.content, len(PASSAGES)) == [
        by_index[i] for i in range(len(PASSAGES))
    ]


@pytest.mark.parametrize("protocol", CLIENT_PROTOCOLS)
def test_remote_scorer_against_our_server_returns_the_local_results(
    live_server: str, local_scorer: Any, protocol: Any
) -> None:
    with RemoteScorer(_base_url(live_server, protocol), protocol=protocol) as remote:
        ranked = remote.rank(QUERY, PASSAGES)
        scores = remote.score(QUERY, PASSAGES)

    local = local_scorer.rank(QUERY, PASSAGES)
    assert [(r.index, r.text) for r in ranked] == [(r.index, r.text) for r in local]
    assert [r.score for r in ranked] == pytest.approx([r.score for r in local], abs=1e-6)
    assert scores == pytest.approx(local_scorer.score(QUERY, PASSAGES), abs=1e-6)


@pytest.mark.parametrize("protocol", CLIENT_PROTOCOLS)
async def test_async_remote_scorer_against_our_server_returns_the_local_results(
    local_scorer: Any, protocol: Any
) -> None:
    app = create_app(local_scorer)
    transport = httpx.ASGITransport(app=app)
    async with (
        httpx.AsyncClient(transport=transport) as http,
        RemoteScorer(
            _base_url("http://testserver", protocol), protocol=protocol, async_http_client=http
        ) as remote,
    ):
        ranked = await remote.arank(QUERY, PASSAGES, top_n=3)

    local = local_scorer.rank(QUERY, PASSAGES, top_n=3)
    assert [r.index for r in ranked] == [r.index for r in local]
    assert [r.score for r in ranked] == pytest.approx([r.score for r in local], abs=1e-6)
