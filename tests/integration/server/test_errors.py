"""Bad requests, auth, limits, scorer failures and loading: each gets the shared error shape.

These cases are about the HTTP layer, so they run on the stand-in scorer only.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest

import rerank_plugins
from rerank_plugins.errors import ModelLoadError, OverloadedError
from rerank_plugins.server.app import create_app

pytestmark = pytest.mark.integration

QUERY = "capital of France"
DOCUMENTS = ["Paris is the capital of France.", "Bananas are yellow.", "Berlin is in Germany."]
GOOD = {"query": QUERY, "documents": DOCUMENTS}


def assert_error(response: Any, status: int, error_type: str, message: str) -> None:
    """The response is the shared error body with this status, type and exact message."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": {"type": error_type, "message": message, "code": status},
        "detail": message,
    }


def assert_still_serving(client: Any) -> None:
    response = client.post("/v1/rerank", json=GOOD)
    assert response.status_code == 200, response.text
    assert response.json()["results"][0]["index"] == 0


# --- auth --------------------------------------------------------------------------------------

MISSING_KEY = (
    "Missing API key. Send the header 'Authorization: Bearer <key>' with the key the server "
    "was started with (--api-key or $RERANK_PLUGINS_API_KEY)."
)
WRONG_KEY = (
    "Invalid API key in the Authorization header. Send the key the server was started with "
    "(--api-key or $RERANK_PLUGINS_API_KEY)."
)


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({}, MISSING_KEY),
        ({"Authorization": "Bearer wrong-key"}, WRONG_KEY),
        ({"Authorization": "Basic dGVzdDp0ZXN0"}, MISSING_KEY),
        ({"Authorization": "Bearer"}, MISSING_KEY),
    ],
    ids=["missing", "wrong", "basic-scheme", "empty-bearer"],
)
@pytest.mark.parametrize("endpoint", ["/rerank", "/v1/rerank", "/v2/rerank"])
def test_bad_api_key_is_401_with_www_authenticate(
    make_client, word_overlap, api_key, endpoint, headers, message
):
    client = make_client(word_overlap, api_key=api_key)

    response = client.post(endpoint, json=GOOD, headers=headers)

    assert_error(response, 401, "authentication_error", message)
    assert response.headers["www-authenticate"] == "Bearer"


def test_right_api_key_is_served(make_client, word_overlap, api_key):
    client = make_client(word_overlap, api_key=api_key)

    response = client.post("/v1/rerank", json=GOOD, headers={"Authorization": f"Bearer {api_key}"})

    assert response.status_code == 200, response.text


def test_auth_is_checked_before_the_body(make_client, word_overlap, api_key):
    """An unauthenticated client learns nothing about the body's validity."""
    client = make_client(word_overlap, api_key=api_key)

    response = client.post("/v1/rerank", content=b"{not json")

    assert_error(response, 401, "authentication_error", MISSING_KEY)


def test_health_and_docs_stay_open_metrics_do_not(make_client, word_overlap, api_key):
    client = make_client(word_overlap, api_key=api_key)

    assert client.get("/health").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert_error(client.get("/metrics"), 401, "authentication_error", MISSING_KEY)
    metrics = client.get("/metrics", headers={"Authorization": f"Bearer {api_key}"})
    assert metrics.status_code == 200


def test_api_key_from_environment(make_client, word_overlap, monkeypatch):
    monkeypatch.setenv("RERANK_PLUGINS_API_KEY", "from-env")
    client = make_client(word_overlap)

    assert client.post("/v1/rerank", json=GOOD).status_code == 401
    authorized = client.post("/v1/rerank", json=GOOD, headers={"Authorization": "Bearer from-env"})
    assert authorized.status_code == 200


def test_empty_environment_key_means_no_auth(make_client, word_overlap, monkeypatch):
    monkeypatch.setenv("RERANK_PLUGINS_API_KEY", "")
    client = make_client(word_overlap)

    assert client.post("/v1/rerank", json=GOOD).status_code == 200


# --- limits -----------------------------------------------------------------------------------


def test_too_many_documents_is_413(make_client, word_overlap):
    client = make_client(word_overlap, max_documents=3)

    assert client.post("/v1/rerank", json=GOOD).status_code == 200  # exactly at the limit
    response = client.post("/v1/rerank", json={"query": QUERY, "documents": [*DOCUMENTS, "x"]})

    assert_error(
        response,
        413,
        "request_too_large_error",
        "Too many documents: got 4, the limit is max_documents=3. Send fewer documents per "
        "request, or raise the limit with `rerank-plugins serve --max-documents N` "
        "(create_app(max_documents=N)).",
    )
    assert_still_serving(client)


def test_too_long_document_is_413(make_client, word_overlap):
    client = make_client(word_overlap, max_document_chars=31)
    documents = ["short", "x" * 31, "y" * 32]

    assert client.post("/v1/rerank", json={"query": QUERY, "documents": documents[:2]}).is_success
    response = client.post("/v2/rerank", json={"query": QUERY, "documents": documents})

    assert_error(
        response,
        413,
        "request_too_large_error",
        "Document 2 has 32 characters, more than max_document_chars=31. Split or shorten it, "
        "or raise the limit with `rerank-plugins serve --max-document-chars N` "
        "(create_app(max_document_chars=N)).",
    )
    assert_still_serving(client)


def test_too_long_query_is_413(make_client, word_overlap):
    client = make_client(word_overlap, max_document_chars=40)

    response = client.post("/rerank", json={"query": "q" * 41, "texts": ["a"]})

    assert_error(
        response,
        413,
        "request_too_large_error",
        "The query has 41 characters, more than max_document_chars=40. Shorten it, or raise "
        "the limit with `rerank-plugins serve --max-document-chars N` "
        "(create_app(max_document_chars=N)).",
    )


def test_limits_apply_to_tei_texts(make_client, word_overlap):
    client = make_client(word_overlap, max_documents=2)

    response = client.post("/rerank", json={"query": QUERY, "texts": DOCUMENTS})

    assert response.status_code == 413
    assert response.json()["error"]["message"].startswith("Too many documents: got 3")


# --- malformed requests -----------------------------------------------------------------------

BAD_BODIES = [
    pytest.param(
        "/v1/rerank",
        b"{not json",
        "Request body is not valid JSON (Expecting property name enclosed in double quotes: "
        "line 1 column 2 (char 1)). Send a JSON object with 'Content-Type: application/json'.",
        id="malformed-json",
    ),
    pytest.param(
        "/v1/rerank",
        b"",
        'Request body is empty. Send a JSON object such as {"query": "...", "documents": '
        '["...", "..."]}.',
        id="empty-body",
    ),
    pytest.param(
        "/v1/rerank",
        b'["a", "b"]',
        "Invalid request body: body: Input should be a valid dictionary or instance of "
        "RerankRequest (got ['a', 'b']).",
        id="body-is-a-list",
    ),
    pytest.param(
        "/rerank",
        b"42",
        "Invalid request body: body: Request body should be a JSON object (got 42).",
        id="legacy-body-is-a-number",
    ),
    pytest.param(
        "/v1/rerank",
        b'{"documents": ["a"]}',
        "Invalid request body: query: Field required.",
        id="missing-query",
    ),
    pytest.param(
        "/v1/rerank",
        b'{"query": "", "documents": ["a"]}',
        "Invalid request body: query: String should have at least 1 character (got '').",
        id="empty-query",
    ),
    pytest.param(
        "/v2/rerank",
        b'{"query": 7, "documents": ["a"]}',
        "Invalid request body: query: Input should be a valid string (got 7).",
        id="query-not-a-string",
    ),
    pytest.param(
        "/v2/rerank",
        b'{"query": "q"}',
        "Invalid request body: documents: Field required.",
        id="missing-documents",
    ),
    pytest.param(
        "/v1/rerank",
        b'{"query": "q", "documents": "one document"}',
        "Invalid request body: documents: Input should be a valid list (got 'one document').",
        id="documents-not-a-list",
    ),
    pytest.param(
        "/v1/rerank",
        b'{"query": "q", "documents": ["a", 3]}',
        "Invalid request body: documents[1]: Input should be a string or an object with a "
        "'text' string (got 3).",
        id="document-not-a-string",
    ),
    pytest.param(
        "/v1/rerank",
        b'{"query": "q", "documents": [{"title": "a"}]}',
        "Invalid request body: documents[0].text: Field required.",
        id="document-object-without-text",
    ),
    pytest.param(
        "/v1/rerank",
        b'{"query": "q", "documents": ["a"], "top_n": 0}',
        "Invalid request body: top_n: Input should be greater than or equal to 1 (got 0).",
        id="top_n-0",
    ),
    pytest.param(
        "/v2/rerank",
        b'{"query": "q", "documents": ["a"], "top_n": -1}',
        "Invalid request body: top_n: Input should be greater than or equal to 1 (got -1).",
        id="top_n-negative",
    ),
    pytest.param(
        "/rerank",
        b'{"query": "q", "documents": ["a"], "top_n": "2"}',
        "Invalid request body: top_n: Input should be a valid integer (got '2').",
        id="top_n-string",
    ),
    pytest.param(
        "/v1/rerank",
        b'{"query": "q", "documents": ["a"], "top_n": 1.5}',
        "Invalid request body: top_n: Input should be a valid integer (got 1.5).",
        id="top_n-float",
    ),
    pytest.param(
        "/v1/rerank",
        b'{"query": "q", "documents": ["a"], "top_n": true}',
        "Invalid request body: top_n: Input should be a valid integer (got True).",
        id="top_n-bool",
    ),
    pytest.param(
        "/v1/rerank",
        b'{"query": "q", "documents": ["a"], "rank_fields": ["title", "text"]}',
        "rank_fields=['title', 'text'] is not supported: only the 'text' field of each "
        "document is ranked. Put the text to rank in 'text' (for several fields, join them, "
        "e.g. as 'title: ...\\nbody: ...') and omit rank_fields.",
        id="rank_fields",
    ),
    pytest.param(
        "/v1/rerank",
        b'{"query": "q", "texts": ["a"]}',
        "Invalid request body: documents: Field required. TEI-style bodies with 'texts' are "
        "served at POST /rerank.",
        id="tei-body-on-v1",
    ),
    pytest.param(
        "/rerank",
        b'{"query": "q", "texts": ["a", null]}',
        "Invalid request body: texts[1]: Input should be a valid string (got None).",
        id="tei-text-null",
    ),
    pytest.param(
        "/rerank",
        b'{"query": "q", "texts": ["a"], "raw_scores": true}',
        "raw_scores=true is not supported: this server returns the model's scores after its "
        "activation (TEI's raw_scores=false). Send raw_scores=false or omit it.",
        id="tei-raw-scores",
    ),
    pytest.param(
        "/rerank",
        b'{"query": "q", "texts": ["a"], "truncation_direction": "Left"}',
        "truncation_direction='Left' is not supported: texts longer than the model's "
        "max_length lose their end. Send 'Right' or omit it.",
        id="tei-truncation-left",
    ),
]


@pytest.mark.parametrize(("endpoint", "body", "message"), BAD_BODIES)
def test_malformed_request_is_422_naming_the_problem(
    make_client, word_overlap, endpoint, body, message
):
    client = make_client(word_overlap)

    response = client.post(endpoint, content=body, headers={"content-type": "application/json"})

    assert_error(response, 422, "invalid_request_error", message)
    assert word_overlap.calls == []  # rejected before reaching the model
    assert_still_serving(client)


def test_several_problems_are_reported_together(make_client, word_overlap):
    client = make_client(word_overlap)

    response = client.post("/v1/rerank", json={"query": 1, "documents": ["a"], "top_n": 0})

    assert_error(
        response,
        422,
        "invalid_request_error",
        "Invalid request body: query: Input should be a valid string (got 1); top_n: Input "
        "should be greater than or equal to 1 (got 0).",
    )


# --- scorer failures --------------------------------------------------------------------------


def test_overloaded_scorer_is_429_with_retry_after(make_client, make_raising_scorer):
    client = make_client(make_raising_scorer(OverloadedError("the queue is full (256 waiting)")))

    response = client.post("/v1/rerank", json=GOOD)

    assert_error(
        response,
        429,
        "overloaded_error",
        "The server is overloaded (the queue is full (256 waiting)). Retry after a short "
        "wait, or send smaller requests.",
    )
    assert response.headers["retry-after"] == "1"


@pytest.mark.parametrize(
    "exc",
    [ValueError("query must not be blank, got '  '."), TypeError("passages[2] must be a str.")],
    ids=["ValueError", "TypeError"],
)
def test_scorer_argument_errors_are_422(make_client, make_raising_scorer, exc):
    client = make_client(make_raising_scorer(exc))

    response = client.post("/v2/rerank", json=GOOD)

    assert_error(response, 422, "invalid_request_error", str(exc))


def test_unexpected_scorer_error_is_500_and_the_server_keeps_serving(
    make_client, make_raising_scorer, word_overlap
):
    failing = make_client(
        make_raising_scorer(RuntimeError("CUDA error: secret internals")),
        raise_server_exceptions=False,
    )

    response = failing.post("/v1/rerank", json=GOOD)

    assert_error(
        response,
        500,
        "internal_server_error",
        "Internal server error (RuntimeError). The server log has the traceback; the server "
        "keeps serving other requests.",
    )
    assert failing.get("/health").status_code == 200


def test_unknown_route_and_method_use_the_error_shape(make_client, word_overlap):
    client = make_client(word_overlap)

    assert_error(
        client.get("/v3/rerank"),
        404,
        "not_found_error",
        "No route GET /v3/rerank. See GET /docs for the API.",
    )
    assert_error(
        client.get("/v1/rerank"),
        405,
        "method_not_allowed_error",
        "Method GET is not allowed on /v1/rerank.",
    )


def test_server_keeps_serving_after_every_kind_of_bad_request(make_client, word_overlap, api_key):
    client = make_client(word_overlap, api_key=api_key, max_documents=3, max_document_chars=100)
    auth = {"Authorization": f"Bearer {api_key}"}
    bad = [
        ("/v1/rerank", b'{"query": "q", "documents": ["a"]}', {}),  # 401
        ("/v1/rerank", b"{not json", auth),  # 422
        ("/v1/rerank", b'{"query": "q", "documents": ["a"], "top_n": 0}', auth),  # 422
        ("/v1/rerank", b'{"query": "q", "documents": ["a", "b", "c", "d"]}', auth),  # 413
        ("/v2/rerank", b'{"query": "q", "documents": ["' + b"x" * 101 + b'"]}', auth),  # 413
        ("/rerank", b'{"query": "q", "texts": ["a"], "raw_scores": true}', auth),  # 422
        ("/v1/rerank", b"\xff\xfe", auth),  # 422, not UTF-8
    ]
    statuses = [
        client.post(
            path, content=body, headers={**headers, "content-type": "application/json"}
        ).status_code
        for path, body, headers in bad
    ]

    assert statuses == [401, 422, 422, 413, 413, 422, 422]
    response = client.post("/v1/rerank", json=GOOD, headers=auth)
    assert response.status_code == 200, response.text
    expected = [r.index for r in word_overlap.rank(QUERY, DOCUMENTS)]
    assert [r["index"] for r in response.json()["results"]] == expected


# --- loading ----------------------------------------------------------------------------------


def _wait_until_loaded(client: Any, timeout: float = 10.0) -> Any:
    """Poll /health until loading is over (loaded or failed); return the last response."""
    deadline = time.monotonic() + timeout
    while True:
        response = client.get("/health")
        still_loading = (
            response.status_code == 503
            and response.json()["error"]["type"] == "model_loading_error"
        )
        if not still_loading or time.monotonic() > deadline:
            return response
        time.sleep(0.01)


def test_endpoints_answer_503_while_the_model_loads(make_client, word_overlap, monkeypatch):
    release = threading.Event()
    calls: list[tuple[str, dict[str, Any]]] = []

    def slow_get_scorer(model: str, **options: Any) -> Any:
        calls.append((model, options))
        release.wait(timeout=10)
        return word_overlap

    monkeypatch.setattr(rerank_plugins, "get_scorer", slow_get_scorer, raising=False)
    client = make_client(model="org/slow-model", scorer_options={"device": "cpu"})

    loading = (
        "The model 'org/slow-model' is still loading. Retry in a few seconds; GET /health "
        "answers 200 once it is ready."
    )
    assert_error(client.get("/health"), 503, "model_loading_error", loading)
    response = client.post("/v1/rerank", json=GOOD)
    assert_error(response, 503, "model_loading_error", loading)
    assert response.headers["retry-after"] == "5"

    release.set()
    health = _wait_until_loaded(client)
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "model": "test/word-overlap"}
    assert calls == [("org/slow-model", {"device": "cpu"})]
    assert_still_serving(client)


def test_failed_load_is_503_naming_the_error(make_client, monkeypatch, caplog):
    def failing_get_scorer(model: str, **options: Any) -> Any:
        msg = f"{model!r} is not a cross-encoder: it has 3 labels."
        raise ModelLoadError(msg)

    monkeypatch.setattr(rerank_plugins, "get_scorer", failing_get_scorer, raising=False)
    client = make_client(model="org/classifier")

    health = _wait_until_loaded(client)

    assert_error(
        health,
        503,
        "model_load_error",
        "The model 'org/classifier' failed to load (ModelLoadError: 'org/classifier' is not "
        "a cross-encoder: it has 3 labels.). Fix the model id, path or options and restart "
        "the server; the server log has the traceback.",
    )
    assert client.post("/v2/rerank", json=GOOD).status_code == 503
    assert "Could not load model 'org/classifier'" in caplog.text


# --- create_app arguments ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {},
            "create_app needs exactly one of scorer or model, got scorer=None and model=None. "
            "Pass create_app(model='<id or path>') to load a model, or create_app(scorer) to "
            "serve a loaded one.",
        ),
        (
            {"max_documents": 0},
            "max_documents must be a positive int, got 0.",
        ),
        (
            {"max_document_chars": 2.5},
            "max_document_chars must be a positive int, got 2.5.",
        ),
        (
            {"api_key": ""},
            "api_key must be a non-empty string or None, got ''. Pass None to read it from "
            "$RERANK_PLUGINS_API_KEY, or leave both unset for no auth.",
        ),
        (
            {"scorer_options": {"device": "cuda"}},
            "scorer_options={'device': 'cuda'} only apply when the app loads the model "
            "(create_app(model=...)); configure the scorer you pass instead.",
        ),
    ],
    ids=["no-scorer-or-model", "max_documents-0", "max_document_chars-float", "empty-key", "opts"],
)
def test_create_app_rejects_bad_arguments(word_overlap, kwargs, message):
    args = () if not kwargs else (word_overlap,)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        create_app(*args, **kwargs)


def test_create_app_rejects_both_scorer_and_model(word_overlap):
    with pytest.raises(ValueError, match=r"^create_app needs exactly one of scorer or model"):
        create_app(word_overlap, model="org/model")
