"""The rerank endpoints' request and response shapes (Cohere v1/v2, Jina, vLLM, TEI).

Expected rankings come from the scorer itself (``scorer.rank``), so every case holds for the
stand-in scorer and for the real one on the tiny BERT.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest

from rerank_plugins.server.app import create_app

pytestmark = pytest.mark.integration

QUERY = "What is the capital of France?"
DOCUMENTS = [
    "Berlin is the capital of Germany.",
    "Paris is the capital and largest city of France.",
    "The Eiffel Tower is in Paris.",
    "Bananas are rich in potassium.",
]
COHERE_ENDPOINTS = ["/rerank", "/v1/rerank", "/v2/rerank"]


def _expected(scorer: Any, query: str, documents: list[str], top_n: int | None = None):
    return [(r.index, r.score) for r in scorer.rank(query, documents, top_n=top_n)]


def _got(results: list[dict[str, Any]], score_key: str = "relevance_score"):
    return [(r["index"], r[score_key]) for r in results]


def _assert_same_ranking(got: list[tuple[int, float]], expected: list[tuple[int, float]]) -> None:
    assert [i for i, _ in got] == [i for i, _ in expected]
    assert [s for _, s in got] == pytest.approx([s for _, s in expected], abs=1e-6)


@pytest.mark.parametrize("endpoint", COHERE_ENDPOINTS)
def test_cohere_shape_ranks_like_the_scorer(client, scorer, endpoint):
    response = client.post(endpoint, json={"query": QUERY, "documents": DOCUMENTS, "top_n": 2})

    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"id", "model", "results", "usage", "meta"}
    _assert_same_ranking(_got(body["results"]), _expected(scorer, QUERY, DOCUMENTS, top_n=2))
    scores = [r["relevance_score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    assert body["model"] == scorer.model
    uuid.UUID(body["id"])  # a UUID, as Cohere sends


@pytest.mark.parametrize(
    ("endpoint", "version"), [("/rerank", "1"), ("/v1/rerank", "1"), ("/v2/rerank", "2")]
)
def test_usage_and_meta_report_the_scorers_token_count(client, scorer, endpoint, version):
    body = client.post(endpoint, json={"query": QUERY, "documents": DOCUMENTS}).json()

    tokens = scorer.count_tokens(QUERY, DOCUMENTS)
    assert tokens > 0
    # Jina: usage.total_tokens; vLLM: usage.prompt_tokens + total_tokens.
    assert body["usage"] == {"prompt_tokens": tokens, "total_tokens": tokens}
    # Cohere: meta.billed_units.search_units and meta.tokens.
    assert body["meta"] == {
        "api_version": {"version": version},
        "billed_units": {"search_units": 1},
        "tokens": {"input_tokens": tokens, "output_tokens": 0},
    }


@pytest.mark.parametrize(
    ("top_n", "expected_count"),
    [(None, 4), (1, 1), (4, 4), (5, 4)],
    ids=["top_n-none", "top_n-1", "top_n-len", "top_n-len+1"],
)
def test_top_n_grid(client, scorer, top_n, expected_count):
    response = client.post(
        "/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS, "top_n": top_n}
    )

    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == expected_count
    _assert_same_ranking(_got(results), _expected(scorer, QUERY, DOCUMENTS)[:expected_count])


def test_documents_are_returned_by_default_and_on_request(client):
    default = client.post("/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS}).json()
    asked = client.post(
        "/v2/rerank", json={"query": QUERY, "documents": DOCUMENTS, "return_documents": True}
    ).json()

    for body in (default, asked):
        for result in body["results"]:
            assert result["document"] == {"text": DOCUMENTS[result["index"]]}


@pytest.mark.parametrize("endpoint", COHERE_ENDPOINTS)
def test_return_documents_false_leaves_document_out(client, endpoint):
    body = client.post(
        endpoint, json={"query": QUERY, "documents": DOCUMENTS, "return_documents": False}
    ).json()

    assert len(body["results"]) == 4
    assert all(set(result) == {"index", "relevance_score"} for result in body["results"])


def test_document_objects_rank_their_text_and_come_back_whole(client, scorer):
    """Cohere v1: object documents keep their other fields in the response."""
    documents: list[Any] = [
        {"text": DOCUMENTS[0], "id": "de"},
        DOCUMENTS[1],
        {"text": DOCUMENTS[2], "id": "tower", "tags": ["paris"]},
    ]
    body = client.post("/v1/rerank", json={"query": QUERY, "documents": documents}).json()

    texts = DOCUMENTS[:3]
    _assert_same_ranking(_got(body["results"]), _expected(scorer, QUERY, texts))
    by_index = {r["index"]: r["document"] for r in body["results"]}
    assert by_index == {
        0: {"text": DOCUMENTS[0], "id": "de"},
        1: {"text": DOCUMENTS[1]},
        2: {"text": DOCUMENTS[2], "id": "tower", "tags": ["paris"]},
    }


def test_request_model_is_ignored_and_the_served_model_reported(client, scorer):
    body = client.post(
        "/v2/rerank",
        json={"model": "rerank-english-v3.0", "query": QUERY, "documents": DOCUMENTS},
    ).json()

    assert body["model"] == scorer.model


def test_vendor_extras_are_accepted(client, scorer):
    """Fields other services define (Cohere, Jina, vLLM) must not break the request."""
    response = client.post(
        "/v2/rerank",
        json={
            "query": QUERY,
            "documents": DOCUMENTS,
            "max_tokens_per_doc": 4096,
            "priority": 0,
            "truncate_prompt_tokens": 256,
            "truncation": True,
        },
    )

    assert response.status_code == 200, response.text
    _assert_same_ranking(_got(response.json()["results"]), _expected(scorer, QUERY, DOCUMENTS))


def test_empty_documents_give_empty_results(client):
    response = client.post("/v1/rerank", json={"query": QUERY, "documents": [], "top_n": 3})

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["results"] == []
    assert body["usage"] == {"prompt_tokens": 0, "total_tokens": 0}


def test_search_units_count_started_hundreds_of_documents(make_client, word_overlap):
    client = make_client(word_overlap)
    documents = [f"document number {i}" for i in range(250)]

    body = client.post(
        "/v1/rerank", json={"query": "number", "documents": documents, "top_n": 1}
    ).json()

    assert body["meta"]["billed_units"] == {"search_units": 3}


def test_tei_shape_on_rerank(client, scorer):
    response = client.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS})

    assert response.status_code == 200, response.text
    body = response.json()
    assert isinstance(body, list)
    assert all(set(item) == {"index", "score"} for item in body)
    _assert_same_ranking(_got(body, "score"), _expected(scorer, QUERY, DOCUMENTS))
    assert response.headers["x-compute-tokens"] == str(scorer.count_tokens(QUERY, DOCUMENTS))


def test_tei_return_text(client):
    body = client.post(
        "/rerank",
        json={"query": QUERY, "texts": DOCUMENTS, "return_text": True, "raw_scores": False},
    ).json()

    assert {item["index"]: item["text"] for item in body} == dict(enumerate(DOCUMENTS))


def test_non_ascii_text_round_trips(client, scorer):
    documents = ["東京は日本の首都です。", "大阪はたこ焼きで有名です。"]
    response = client.post("/v1/rerank", json={"query": "日本の首都は？", "documents": documents})

    assert response.status_code == 200, response.text
    body = response.json()
    assert {r["index"]: r["document"]["text"] for r in body["results"]} == dict(
        enumerate(documents)
    )


@pytest.mark.parametrize(
    "content_type",
    [None, "application/x-www-form-urlencoded", "text/plain"],
    ids=["no-content-type", "curl-d-default", "text-plain"],
)
def test_json_body_parses_whatever_the_content_type(client, content_type):
    """`curl -d` sends a form content type; the body is still JSON and must be read as such."""
    headers = {"content-type": content_type} if content_type else {}
    response = client.post(
        "/v1/rerank",
        content=b'{"query": "capital of France", "documents": ["Paris", "Bananas"]}',
        headers=headers,
    )

    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == 2


async def test_concurrent_requests_each_get_their_own_results(scorer):
    """Requests in flight together must not see each other's documents or scores."""
    app = create_app(scorer)  # a scorer object is ready without the lifespan
    queries = [f"{word} capital" for word in ("Paris", "Berlin", "Tower", "Bananas")] * 3
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        responses = await asyncio.gather(
            *(
                http.post("/v1/rerank", json={"query": q, "documents": DOCUMENTS, "top_n": 2})
                for q in queries
            )
        )

    for query, response in zip(queries, responses, strict=True):
        assert response.status_code == 200, response.text
        _assert_same_ranking(
            _got(response.json()["results"]), _expected(scorer, query, DOCUMENTS, top_n=2)
        )
