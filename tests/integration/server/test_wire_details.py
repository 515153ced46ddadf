"""Wire details real clients and schemathesis found: numbers, booleans, blank text, Infinity."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from rerank_plugins import RemoteScorer

pytestmark = pytest.mark.integration

QUERY = "What is the capital of France?"
DOCUMENTS = [
    "Berlin is the capital of Germany.",
    "Paris is the capital and largest city of France.",
    "The Eiffel Tower is in Paris.",
]
JSON = {"content-type": "application/json"}


def _post(client: Any, endpoint: str, raw: str) -> Any:
    return client.post(endpoint, content=raw.encode(), headers=JSON)


@pytest.mark.parametrize("endpoint", ["/rerank", "/v1/rerank", "/v2/rerank", "/infinity/rerank"])
@pytest.mark.parametrize(
    ("top_n", "expected"), [("2.0", 2), ("469.0", 3), ("1e0", 1)], ids=["2.0", "469.0", "1e0"]
)
def test_integral_float_top_n_is_an_int(client, scorer, endpoint, top_n, expected):
    """Regression: top_n 469.0 (JSON from JavaScript) was rejected though the schema allows it."""
    documents = '["' + '", "'.join(DOCUMENTS) + '"]'
    raw = f'{{"query": "{QUERY}", "documents": {documents}, "top_n": {top_n}}}'
    response = _post(client, endpoint, raw)
    assert response.status_code == 200, response.text
    indices = [r["index"] for r in response.json()["results"]]
    assert indices == [r.index for r in scorer.rank(QUERY, DOCUMENTS)][:expected]


@pytest.mark.parametrize(
    ("endpoint", "field", "value", "message"),
    [
        ("/v1/rerank", "top_n", "469.5", "top_n: Input should be a valid integer (got 469.5)."),
        ("/v2/rerank", "top_n", "0.0", "top_n: Input should be greater than or equal to 1 (got 0)"),
        (
            "/v1/rerank",
            "return_documents",
            "0",
            "return_documents: Input should be a valid boolean",
        ),
        ("/v2/rerank", "return_documents", '"true"', "return_documents: Input should be a valid"),
        ("/infinity/rerank", "return_documents", "1", "return_documents: Input should be a valid"),
        ("/v1/rerank", "max_chunks_per_doc", "2.5", "max_chunks_per_doc: Input should be a valid"),
    ],
    ids=[
        "top_n-469.5",
        "top_n-0.0",
        "return_documents-0",
        "return_documents-str",
        "infinity-1",
        "chunks",
    ],
)
def test_numbers_and_booleans_are_strict(
    make_client, word_overlap, endpoint, field, value, message
):
    """Regression: return_documents 0 was taken as false (the schema says boolean)."""
    client = make_client(word_overlap)
    response = _post(client, endpoint, f'{{"query": "q", "documents": ["a"], "{field}": {value}}}')
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(f"Invalid request body: {message}")
    assert word_overlap.calls == []


@pytest.mark.parametrize("field", ["truncate", "raw_scores", "return_text"])
def test_tei_booleans_are_strict(make_client, word_overlap, field):
    response = _post(
        make_client(word_overlap), "/rerank", f'{{"query": "q", "texts": ["a"], "{field}": 0}}'
    )
    assert response.status_code == 422
    assert f"{field}: Input should be a valid boolean (got 0)" in response.json()["detail"]


@pytest.mark.parametrize("endpoint", ["/rerank", "/v1/rerank", "/v2/rerank", "/infinity/rerank"])
@pytest.mark.parametrize(
    "query",
    ["\\u001c", " \\t\\n", "\\u3000", "\\u0085"],
    ids=["x1c", "ascii", "ideographic", "nel"],
)
def test_blank_query_is_rejected_as_the_schema_says(make_client, word_overlap, endpoint, query):
    """Regression: a control-character-only query was rejected though the schema allowed it."""
    response = _post(
        make_client(word_overlap), endpoint, f'{{"query": "{query}", "documents": ["a"]}}'
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith(
        "Invalid request body: query: String should contain a character that is not whitespace"
    )


def test_the_schema_says_the_query_needs_a_non_whitespace_character(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("RerankRequest", "RerankV2Request", "TEIRerankRequest", "InfinityRerankRequest"):
        query = schemas[name]["properties"]["query"]
        assert (query["type"], query["minLength"], query["pattern"]) == ("string", 1, r"\S")


def test_a_control_character_query_with_text_is_served(client, scorer):
    """A query the schema allows (it has a non-whitespace character) is ranked."""
    response = _post(client, "/v1/rerank", '{"query": "\\u0000", "documents": ["a", "b"]}')
    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == 2


@pytest.mark.parametrize(
    ("endpoint", "body", "where", "problem"),
    [
        ("/v1/rerank", '{"query": "q", "documents": ["a", "x\\ud83d"]}', "documents[1]", "String"),
        ("/v2/rerank", '{"query": "q\\udc80", "documents": ["a"]}', "query", "String"),
        ("/rerank", '{"query": "q", "texts": ["\\ud800"]}', "texts[0]", "String"),
        (
            "/v1/rerank",
            '{"query": "q", "documents": [{"text": "a", "title": "\\ud800"}]}',
            "documents[0]",
            "Field 'title'",
        ),
        ("/infinity/rerank", '{"query": "q", "documents": ["\\udfff"]}', "documents[0]", "String"),
    ],
    ids=["document", "query", "tei-text", "echoed-field", "infinity"],
)
def test_lone_surrogate_is_422_naming_the_field(
    make_client, word_overlap, endpoint, body, where, problem
):
    """Regression: a lone surrogate reached the tokenizer (TypeError) or broke the response."""
    response = _post(make_client(word_overlap), endpoint, body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(
        f"Invalid request body: {where}: {problem} contains a lone surrogate "
    )
    assert word_overlap.calls == []


def test_metrics_401_is_in_the_openapi_document(make_client, word_overlap, api_key):
    """Regression: /metrics answered 401 without a key, but its schema did not say so."""
    client = make_client(word_overlap, api_key=api_key)
    responses = client.get("/openapi.json").json()["paths"]["/metrics"]["get"]["responses"]
    assert set(responses) == {"200", "401"}
    assert client.get("/metrics").status_code == 401


# --- Infinity --------------------------------------------------------------------------------


class _LiteLLMDocument(BaseModel):
    """litellm's ``infinity/`` provider wraps ``document`` as ``{"text": document}``."""

    text: str


@pytest.mark.parametrize("return_documents", [True, False])
def test_infinity_shape(client, scorer, return_documents):
    """Regression: litellm infinity/ failed on `results.0.document.text` (we sent an object)."""
    response = client.post(
        "/infinity/rerank",
        json={"query": QUERY, "documents": DOCUMENTS, "return_documents": return_documents},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"object", "id", "created", "model", "results", "usage"}
    assert (body["object"], body["model"]) == ("rerank", scorer.model)
    assert body["usage"] == {"prompt_tokens": scorer.count_tokens(QUERY, DOCUMENTS)} | {
        "total_tokens": scorer.count_tokens(QUERY, DOCUMENTS)
    }
    expected = scorer.rank(QUERY, DOCUMENTS)
    assert [r["index"] for r in body["results"]] == [r.index for r in expected]
    assert [r["relevance_score"] for r in body["results"]] == pytest.approx(
        [r.score for r in expected], abs=1e-6
    )
    for result in body["results"]:
        if return_documents:
            assert _LiteLLMDocument(text=result["document"]).text == DOCUMENTS[result["index"]]
        else:
            assert "document" not in result


def test_infinity_defaults_to_no_documents_and_rejects_raw_scores(client):
    body = client.post("/infinity/rerank", json={"query": QUERY, "documents": DOCUMENTS}).json()
    assert all("document" not in result for result in body["results"])
    response = client.post(
        "/infinity/rerank", json={"query": QUERY, "documents": DOCUMENTS, "raw_scores": True}
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("raw_scores=true is not supported")


def test_infinity_protocol_client_with_the_infinity_base_url(live_server, scorer, api_key):
    """An Infinity client given ``<server>/infinity`` as its base URL posts to /infinity/rerank."""
    with RemoteScorer(f"{live_server}/infinity", protocol="infinity", api_key=api_key) as remote:
        results = remote.rank(QUERY, DOCUMENTS, top_n=2)
    expected = scorer.rank(QUERY, DOCUMENTS, top_n=2)
    assert [r.index for r in results] == [r.index for r in expected]


def test_infinity_raw_request_on_a_live_server(live_server, scorer, api_key):
    response = httpx.post(
        f"{live_server}/infinity/rerank",
        json={
            "model": "any",
            "query": QUERY,
            "documents": DOCUMENTS,
            "top_n": 1,
            "return_documents": True,
        },
        headers={"Authorization": f"Bearer {api_key}"},
    )
    assert response.status_code == 200, response.text
    [result] = response.json()["results"]
    assert result["document"] == DOCUMENTS[scorer.rank(QUERY, DOCUMENTS)[0].index]
