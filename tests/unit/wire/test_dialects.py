"""The client-facing side of the dialects: request bodies, reading scores, the registry."""

from __future__ import annotations

import re

import pytest

from rerank_plugins import wire
from rerank_plugins.wire import Dialect, ResponseShapeError, get_dialect


@pytest.mark.parametrize(
    ("name", "path", "from_root", "body"),
    [
        ("cohere", "/v2/rerank", True, {"query": "q", "documents": ["a", "b"], "model": "m"}),
        (
            "jina",
            "/v1/rerank",
            True,
            {"query": "q", "documents": ["a", "b"], "model": "m", "return_documents": False},
        ),
        ("vllm", "/v1/rerank", True, {"query": "q", "documents": ["a", "b"], "model": "m"}),
        (
            "infinity",
            "/rerank",
            False,
            {
                "query": "q",
                "documents": ["a", "b"],
                "model": "m",
                "return_documents": False,
                "raw_scores": False,
            },
        ),
        (
            "tei",
            "/rerank",
            False,
            {
                "query": "q",
                "texts": ["a", "b"],
                "truncate": True,
                "raw_scores": False,
                "return_text": False,
            },
        ),
    ],
)
def test_request_body_and_path_per_client_protocol(name, path, from_root, body):
    dialect = get_dialect(name)

    assert (dialect.name, dialect.path, dialect.from_root) == (name, path, from_root)
    assert dialect.request_body("q", ["a", "b"], "m") == body
    assert list(dialect.request_body("q", ["a", "b"], "m")) == list(body)


@pytest.mark.parametrize("name", ["cohere", "jina", "vllm", "infinity", "tei"])
def test_model_is_left_out_when_not_given(name):
    assert "model" not in get_dialect(name).request_body("q", ["a"], None)


def test_request_bodies_are_fresh_dicts():
    """Changing one body (the client merges ``extra_body`` into it) leaves the next alone."""
    dialect = get_dialect("jina")
    first = dialect.request_body("q", ["a"], None)
    first["return_documents"] = True

    assert dialect.request_body("q", ["a"], None)["return_documents"] is False


@pytest.mark.parametrize(
    ("payload", "scores"),
    [
        pytest.param(
            [{"index": 2, "score": 0.9}, {"index": 0, "score": 0.5}, {"index": 1, "score": -1}],
            [0.5, -1.0, 0.9],
            id="tei-bare-list",
        ),
        pytest.param(
            {"results": [{"index": 1, "relevance_score": 3}, {"index": 0, "relevance_score": 2}]},
            [2.0, 3.0],
            id="results",
        ),
        pytest.param(
            {"data": [{"index": 0, "relevance_score": 0.25}, {"index": 1, "relevance_score": 1}]},
            [0.25, 1.0],
            id="older-infinity-data",
        ),
    ],
)
def test_read_scores_maps_results_back_by_index(payload, scores):
    count = len(scores)
    for name in wire.dialect_names():
        assert get_dialect(name).read_scores(payload, count) == scores


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        pytest.param(
            {"answer": 42},
            "without a list of results (expected the 'jina' response shape): {\"answer\": 42}.",
            id="no-results",
        ),
        pytest.param(
            {"results": [{"index": 7, "relevance_score": 1.0}, {"index": 0, "score": 1}]},
            "but returned a result that does not fit 2 documents: "
            "{'index': 7, 'relevance_score': 1.0}. Each result needs a unique 'index' in "
            "[0, 2) and a numeric 'relevance_score' (or 'score').",
            id="index-out-of-range",
        ),
        pytest.param(
            [{"index": 0, "score": 1}, {"index": 0, "score": 2}],
            "but returned a result that does not fit 2 documents: {'index': 0, 'score': 2}. "
            "Each result needs a unique 'index' in [0, 2) and a numeric 'relevance_score' "
            "(or 'score').",
            id="duplicate-index",
        ),
        pytest.param(
            [{"index": 0, "score": True}, {"index": 1, "score": 2}],
            "but returned a result that does not fit 2 documents: {'index': 0, 'score': True}. "
            "Each result needs a unique 'index' in [0, 2) and a numeric 'relevance_score' "
            "(or 'score').",
            id="bool-score",
        ),
        pytest.param(
            {"results": [{"index": 1, "relevance_score": 0.5}]},
            "but returned 1 results for 2 documents (missing indices [0]). The server must "
            "score every document; does it apply a default top_n?",
            id="missing",
        ),
    ],
)
def test_read_scores_errors_complete_the_clients_sentence(payload, message):
    with pytest.raises(ResponseShapeError, match=f"^{re.escape(message)}$"):
        get_dialect("jina").read_scores(payload, 2)


def test_response_shape_error_is_a_value_error():
    assert issubclass(ResponseShapeError, ValueError)


def test_missing_indices_are_shown_ten_at_most():
    with pytest.raises(ResponseShapeError, match=r"missing indices \[2, 3, .*, 11\]\.\.\.\)"):
        get_dialect("tei").read_scores([{"index": 0, "score": 1}, {"index": 1, "score": 1}], 20)


def test_registry_names_and_errors():
    assert wire.dialect_names() == ("cohere-v1", "cohere", "jina", "vllm", "tei", "infinity")
    with pytest.raises(ValueError, match=r"^Unknown rerank dialect 'cohere-v3'\. Use one of: "):
        get_dialect("cohere-v3")
    with pytest.raises(ValueError, match=r"^A dialect named 'tei' is already registered\."):
        wire.register(get_dialect("tei"))


def test_a_registered_dialect_is_found_by_name(monkeypatch):
    """Adding a dialect is one `register` call; the registry is restored afterwards."""
    monkeypatch.setattr(wire, "_DIALECTS", dict(wire._DIALECTS))
    base = get_dialect("vllm")
    custom = Dialect(
        name="custom",
        path="/api/rerank",
        from_root=True,
        request_model=base.request_model,
        response_model=base.response_model,
        inputs=base.inputs,
        reply=base.reply,
    )

    assert wire.register(custom) is custom
    assert get_dialect("custom").request_body("q", ["a"], None) == {
        "query": "q",
        "documents": ["a"],
    }
