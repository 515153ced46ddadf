"""Recorded requests and responses of the real services parse and serialise identically.

Each example is the one the service documents (the source is in each test's docstring).
Its request must validate as the dialect's request model (what our server parses) and
its response as the dialect's response model, and both must dump back to the same JSON;
the client's own body for the same query and documents must be the documented one minus
the fields it never sends (``top_n``) plus its fixed extras.
"""

from __future__ import annotations

from typing import Any

import pytest

from rerank_plugins.wire import Dialect, ResponseShapeError, get_dialect

_COHERE_DOCUMENTS = [
    "Carson City is the capital city of the American state of Nevada.",
    "The Commonwealth of the Northern Mariana Islands is a group of islands in the Pacific "
    "Ocean. Its capital is Saipan.",
    "Capitalization or capitalisation in English grammar is the use of a capital letter at the "
    "start of a word. English usage varies from capitalization in other languages.",
    "Washington, D.C. (also known as simply Washington or D.C., and officially as the District "
    "of Columbia) is the capital of the United States. It is a federal district.",
    "Capital punishment has existed in the United States since beforethe United States was a "
    "country. As of 2017, capital punishment is legal in 30 of the 50 states.",
]


def _round_trips(dialect: Dialect[Any], request: dict[str, Any], response: Any) -> None:
    parsed_request = dialect.request_model.model_validate(request)
    assert parsed_request.model_dump(mode="json", exclude_unset=True) == request
    parsed_response = dialect.response_model.model_validate(response)
    assert parsed_response.model_dump(mode="json", exclude_unset=True) == response

    documents = request[dialect.documents_field]
    body = dialect.request_body(request["query"], documents, request.get("model"))
    sent = {key: value for key, value in request.items() if key != "top_n"}
    assert body == {**sent, **dict(dialect.extra)}
    dialect.request_model.model_validate(body)


def _results(response: Any) -> list[dict[str, Any]]:
    return response if isinstance(response, list) else response["results"]


def _check_scores(dialect: Dialect[Any], response: Any, count: int) -> None:
    """Every document scored: the scores by index; top_n cut some: the client's error."""
    results = _results(response)
    if len(results) < count:
        with pytest.raises(ResponseShapeError, match=r"missing indices"):
            dialect.read_scores(response, count)
        return
    expected = [0.0] * count
    for item in results:
        expected[item["index"]] = item.get("relevance_score", item.get("score"))
    assert dialect.read_scores(response, count) == expected


def test_cohere_v2():
    """Cohere v2 rerank, https://docs.cohere.com/reference/rerank-1 (example request/response)."""
    request = {
        "model": "rerank-v4.0-pro",
        "query": "What is the capital of the United States?",
        "documents": _COHERE_DOCUMENTS,
        "top_n": 3,
    }
    response = {
        "results": [
            {"index": 3, "relevance_score": 0.999071},
            {"index": 4, "relevance_score": 0.7867867},
            {"index": 0, "relevance_score": 0.32713068},
        ],
        "id": "07734bd2-2473-4f07-94e1-0d9f0e6843cf",
        "meta": {
            "api_version": {"version": "2", "is_experimental": False},
            "billed_units": {"search_units": 1},
        },
    }
    dialect = get_dialect("cohere")
    _round_trips(dialect, request, response)
    _check_scores(dialect, response, len(request["documents"]))


def test_cohere_v1():
    """Cohere v1 rerank, https://docs.cohere.com/v1/reference/rerank.

    The v1 page was not reachable offline: this is the v2 example above (same documents,
    https://docs.cohere.com/reference/rerank-1) in v1's documented shape, with v1's
    ``return_documents`` and ``rank_fields`` and ``document`` echoed in each result.
    """
    request = {
        "model": "rerank-english-v3.0",
        "query": "What is the capital of the United States?",
        "documents": [{"text": text} for text in _COHERE_DOCUMENTS],
        "top_n": 3,
        "return_documents": True,
        "rank_fields": ["text"],
    }
    response = {
        "id": "07734bd2-2473-4f07-94e1-0d9f0e6843cf",
        "results": [
            {"document": {"text": _COHERE_DOCUMENTS[3]}, "index": 3, "relevance_score": 0.999071},
            {"document": {"text": _COHERE_DOCUMENTS[4]}, "index": 4, "relevance_score": 0.7867867},
            {"document": {"text": _COHERE_DOCUMENTS[0]}, "index": 0, "relevance_score": 0.32713068},
        ],
        "meta": {"api_version": {"version": "1"}, "billed_units": {"search_units": 1}},
    }
    dialect = get_dialect("cohere-v1")
    parsed = dialect.request_model.model_validate(request)
    assert parsed.model_dump(mode="json", exclude_unset=True) == request
    assert (
        dialect.response_model.model_validate(response).model_dump(mode="json", exclude_unset=True)
        == response
    )
    _check_scores(dialect, response, len(request["documents"]))


def test_jina():
    """Jina Reranker API (https://jina.ai/reranker), as reproduced with its example request and
    response at https://docs.newapi.pro/en/api/jinaai-rerank (which adds ``prompt_tokens`` and
    ``completion_tokens`` to ``usage``)."""
    request = {
        "model": "jina-reranker-v2-base-multilingual",
        "query": "Organic skincare products for sensitive skin",
        "top_n": 3,
        "documents": [
            "Organic skincare for sensitive skin with aloe vera and chamomile...",
            "New makeup trends focus on bold colors and innovative techniques...",
            "Bio-Hautpflege für empfindliche Haut mit Aloe Vera und Kamille...",
        ],
    }
    response = {
        "results": [
            {
                "document": {"text": request["documents"][0]},
                "index": 0,
                "relevance_score": 0.8783142566680908,
            },
            {
                "document": {"text": request["documents"][2]},
                "index": 2,
                "relevance_score": 0.7624675869941711,
            },
        ],
        "usage": {"prompt_tokens": 815, "completion_tokens": 0, "total_tokens": 815},
    }
    dialect = get_dialect("jina")
    _round_trips(dialect, request, response)
    _check_scores(dialect, response, len(request["documents"]))


def test_vllm():
    """vLLM Re-rank API, https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html
    (section "Re-rank API", example request and response)."""
    request = {
        "model": "BAAI/bge-reranker-base",
        "query": "What is the capital of France?",
        "documents": [
            "The capital of Brazil is Brasilia.",
            "The capital of France is Paris.",
            "Horses and cows are both animals",
        ],
    }
    response = {
        "id": "rerank-fae51b2b664d4ed38f5969b612edff77",
        "model": "BAAI/bge-reranker-base",
        "usage": {"total_tokens": 56},
        "results": [
            {
                "index": 1,
                "document": {"text": "The capital of France is Paris."},
                "relevance_score": 0.99853515625,
            },
            {
                "index": 0,
                "document": {"text": "The capital of Brazil is Brasilia."},
                "relevance_score": 0.0005860328674316406,
            },
        ],
    }
    dialect = get_dialect("vllm")
    _round_trips(dialect, request, response)
    # vLLM's example answers 2 of 3 documents, so the client's check names the missing one.
    _check_scores(dialect, response, len(request["documents"]))


def test_tei():
    """TEI rerank: the request of https://huggingface.co/docs/text-embeddings-inference/quick_tour
    (section "Re-rankers"); the response is a list of the ``Rank`` items of TEI's OpenAPI
    document (example ``{"index": 0, "score": 1.0, "text": "Deep Learning is ..."}``),
    https://github.com/huggingface/text-embeddings-inference/blob/main/docs/openapi.json, for
    the two texts (TEI documents no full response)."""
    request = {
        "query": "What is Deep Learning?",
        "texts": ["Deep Learning is not...", "Deep learning is..."],
        "raw_scores": False,
    }
    response = [
        {"index": 1, "score": 1.0, "text": "Deep learning is..."},
        {"index": 0, "score": 0.5, "text": "Deep Learning is not..."},
    ]
    dialect = get_dialect("tei")
    parsed = dialect.request_model.model_validate(request)
    assert parsed.model_dump(mode="json", exclude_unset=True) == request
    assert (
        dialect.response_model.model_validate(response).model_dump(mode="json", exclude_unset=True)
        == response
    )
    body = dialect.request_body(request["query"], request["texts"], "ignored-model")
    assert body == {**request, "truncate": True, "return_text": False}
    _check_scores(dialect, response, len(request["texts"]))


def test_infinity():
    """Infinity rerank: the request of the ``/rerank`` description in Infinity's OpenAPI
    document, https://github.com/michaelfeil/infinity/blob/main/docs/assets/openapi.json; the
    response follows its ``ReRankResult`` schema there (it documents no example values)."""
    request = {
        "model": "mixedbread-ai/mxbai-rerank-xsmall-v1",
        "query": "Where is Munich?",
        "documents": ["Munich is in Germany.", "The sky is blue."],
    }
    response = {
        "object": "rerank",
        "results": [
            {"relevance_score": 0.9, "index": 0, "document": None},
            {"relevance_score": 0.1, "index": 1, "document": None},
        ],
        "model": "mixedbread-ai/mxbai-rerank-xsmall-v1",
        "usage": {"prompt_tokens": 14, "total_tokens": 14},
        "id": "infinity-8f0c4f5e-1c1f-4c55-9d7f-2f8a3b6c9d10",
        "created": 1733000000,
    }
    dialect = get_dialect("infinity")
    _round_trips(dialect, request, response)
    _check_scores(dialect, response, len(request["documents"]))
