"""Real clients against a real uvicorn server on 127.0.0.1 (no mocks of the server).

The Cohere SDK (v1 ``Client`` and ``ClientV2``), LangChain's and LlamaIndex's
``CohereRerank``, and raw TEI- and Jina-style requests, all pointed at the server by
``base_url``.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

pytestmark = pytest.mark.integration

QUERY = "What is the capital of France?"
DOCUMENTS = [
    "Berlin is the capital of Germany.",
    "Paris is the capital and largest city of France.",
    "The Eiffel Tower is in Paris.",
    "Bananas are rich in potassium.",
]


def _expected_indices(scorer: Any, top_n: int | None = None) -> list[int]:
    return [r.index for r in scorer.rank(QUERY, DOCUMENTS, top_n=top_n)]


def test_cohere_v1_client(live_server, scorer, api_key):
    cohere = pytest.importorskip("cohere")
    client = cohere.Client(api_key=api_key, base_url=live_server)

    response = client.rerank(
        model="rerank-english-v3.0",
        query=QUERY,
        documents=[DOCUMENTS[0], {"text": DOCUMENTS[1]}, *DOCUMENTS[2:]],
        top_n=2,
        return_documents=True,
    )

    assert [r.index for r in response.results] == _expected_indices(scorer, top_n=2)
    assert [r.document.text for r in response.results] == [
        DOCUMENTS[r.index] for r in response.results
    ]
    scores = [r.relevance_score for r in response.results]
    assert scores == pytest.approx([r.score for r in scorer.rank(QUERY, DOCUMENTS, top_n=2)])
    assert response.meta.billed_units.search_units == 1
    assert response.meta.tokens.input_tokens == scorer.count_tokens(QUERY, DOCUMENTS)


def test_cohere_v2_client(live_server, scorer, api_key):
    cohere = pytest.importorskip("cohere")
    client = cohere.ClientV2(api_key=api_key, base_url=live_server)

    response = client.rerank(model="rerank-v3.5", query=QUERY, documents=DOCUMENTS, top_n=3)

    assert [r.index for r in response.results] == _expected_indices(scorer, top_n=3)
    assert response.meta.api_version.version == "2"


def test_cohere_client_with_a_wrong_key_gets_401(live_server):
    cohere = pytest.importorskip("cohere")
    client = cohere.ClientV2(api_key="not-the-key", base_url=live_server)

    with pytest.raises(cohere.errors.UnauthorizedError) as info:
        client.rerank(model="rerank-v3.5", query=QUERY, documents=DOCUMENTS)

    assert info.value.status_code == 401
    assert info.value.body["error"]["type"] == "authentication_error"


def test_cohere_client_bad_request_gets_422_with_the_message(live_server, api_key):
    cohere = pytest.importorskip("cohere")
    client = cohere.ClientV2(api_key=api_key, base_url=live_server)

    with pytest.raises(cohere.errors.UnprocessableEntityError) as info:
        client.rerank(model="rerank-v3.5", query=QUERY, documents=DOCUMENTS, top_n=0)

    assert info.value.body["detail"] == (
        "Invalid request body: top_n: Input should be greater than or equal to 1 (got 0)."
    )


def test_langchain_cohere_rerank(live_server, scorer, api_key):
    langchain_cohere = pytest.importorskip("langchain_cohere")
    from langchain_core.documents import Document

    reranker = langchain_cohere.CohereRerank(
        model="rerank-v3.5", cohere_api_key=api_key, base_url=live_server, top_n=2
    )
    documents = [Document(page_content=text, metadata={"i": i}) for i, text in enumerate(DOCUMENTS)]

    compressed = reranker.compress_documents(documents, QUERY)

    assert [doc.metadata["i"] for doc in compressed] == _expected_indices(scorer, top_n=2)
    expected_scores = [r.score for r in scorer.rank(QUERY, DOCUMENTS, top_n=2)]
    assert [doc.metadata["relevance_score"] for doc in compressed] == pytest.approx(expected_scores)


def test_llama_index_cohere_rerank(live_server, scorer, api_key):
    cohere_rerank = pytest.importorskip("llama_index.postprocessor.cohere_rerank")
    from llama_index.core.schema import NodeWithScore, TextNode

    reranker = cohere_rerank.CohereRerank(
        api_key=api_key, base_url=live_server, model="rerank-v3.5", top_n=2, max_retries=0
    )
    nodes = [
        NodeWithScore(node=TextNode(text=text, id_=str(i))) for i, text in enumerate(DOCUMENTS)
    ]

    reranked = reranker.postprocess_nodes(nodes, query_str=QUERY)

    assert [int(n.node.node_id) for n in reranked] == _expected_indices(scorer, top_n=2)


def test_tei_style_raw_request(live_server, scorer, api_key):
    response = httpx.post(
        f"{live_server}/rerank",
        json={"query": QUERY, "texts": DOCUMENTS, "truncate": True, "return_text": True},
        headers={"Authorization": f"Bearer {api_key}"},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert [item["index"] for item in body] == _expected_indices(scorer)
    assert [item["text"] for item in body] == [DOCUMENTS[item["index"]] for item in body]


def test_jina_style_raw_request(live_server, scorer, api_key):
    response = httpx.post(
        f"{live_server}/v1/rerank",
        json={
            "model": "jina-reranker-v2-base-multilingual",
            "query": QUERY,
            "documents": DOCUMENTS,
            "top_n": 2,
            "return_documents": True,
        },
        headers={"Authorization": f"Bearer {api_key}"},
    )

    assert response.status_code == 200, response.text
    body = response.json()
    assert body["usage"]["total_tokens"] == scorer.count_tokens(QUERY, DOCUMENTS)
    assert [r["index"] for r in body["results"]] == _expected_indices(scorer, top_n=2)
    assert [r["document"]["text"] for r in body["results"]] == [
        DOCUMENTS[r["index"]] for r in body["results"]
    ]


def test_loopback_server_keeps_serving_after_bad_requests(live_server, scorer, api_key):
    auth = {"Authorization": f"Bearer {api_key}", "content-type": "application/json"}
    with httpx.Client(base_url=live_server) as http:
        statuses = [
            http.post("/v1/rerank", content=b"{broken", headers=auth).status_code,
            http.post("/v1/rerank", json={"query": "q", "documents": ["a"]}).status_code,
            http.post(
                "/v2/rerank", content=b'{"query": "q", "top_n": 0}', headers=auth
            ).status_code,
            http.post("/v1/rerank", content=b"\x00\xff" * 100, headers=auth).status_code,
        ]
        good = http.post("/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS}, headers=auth)

    assert statuses == [422, 401, 422, 422]
    assert good.status_code == 200
    assert [r["index"] for r in good.json()["results"]] == _expected_indices(scorer)
