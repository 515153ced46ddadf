"""Contract tests: the OpenAPI document pins the request and response schemas clients rely on."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.integration


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    if ref is None:
        return schema
    name = ref.removeprefix("#/components/schemas/")
    return document["components"]["schemas"][name]


def _request_schema(document: dict[str, Any], path: str) -> dict[str, Any]:
    body = document["paths"][path]["post"]["requestBody"]
    assert body["required"] is True
    return _resolve(document, body["content"]["application/json"]["schema"])


@pytest.fixture
def openapi(make_client, word_overlap, api_key) -> dict[str, Any]:
    return make_client(word_overlap, api_key=api_key).get("/openapi.json").json()


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank"])
def test_cohere_jina_request_schema(openapi, path):
    schema = _request_schema(openapi, path)

    properties = schema["properties"]
    assert {"query", "documents", "top_n", "return_documents", "model"} <= set(properties)
    assert schema["required"] == ["query", "documents"]
    top_n = {option.get("type"): option for option in properties["top_n"]["anyOf"]}
    assert top_n["integer"]["minimum"] == 1
    assert "null" in top_n
    assert properties["return_documents"] == {
        "type": "boolean",
        "default": True,
        "title": "Return Documents",
        "description": properties["return_documents"]["description"],
    }
    item_types = properties["documents"]["items"]["oneOf"]
    assert {"type": "string"} in item_types
    assert {"$ref": "#/components/schemas/DocumentObject"} in item_types
    document_object = openapi["components"]["schemas"]["DocumentObject"]
    assert document_object["required"] == ["text"]


def test_rerank_accepts_cohere_and_tei_bodies(openapi):
    body = openapi["paths"]["/rerank"]["post"]["requestBody"]["content"]["application/json"]
    shapes = [_resolve(openapi, option) for option in body["schema"]["oneOf"]]

    assert [shape["title"] for shape in shapes] == ["RerankRequest", "TEIRerankRequest"]
    tei = shapes[1]
    assert tei["required"] == ["query", "texts"]
    assert {"query", "texts", "raw_scores", "return_text", "truncate"} <= set(tei["properties"])


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank"])
def test_response_schema(openapi, path):
    responses = openapi["paths"][path]["post"]["responses"]
    schema = _resolve(openapi, responses["200"]["content"]["application/json"]["schema"])

    assert set(schema["required"]) == {"id", "model", "results", "usage", "meta"}
    result = openapi["components"]["schemas"]["RerankResult"]
    assert set(result["required"]) == {"index", "relevance_score"}
    assert set(responses) >= {"200", "401", "413", "422", "429", "503"}
    error = _resolve(openapi, responses["422"]["content"]["application/json"]["schema"])
    assert error["required"] == ["error", "detail"]


def test_tei_response_schema(openapi):
    rank = openapi["components"]["schemas"]["TEIRank"]

    assert rank["required"] == ["index", "score"]
    assert set(rank["properties"]) == {"index", "score", "text"}


def test_bearer_auth_is_declared_when_a_key_is_set(openapi):
    schemes = openapi["components"]["securitySchemes"]

    assert schemes["HTTPBearer"]["type"] == "http"
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert openapi["paths"]["/v1/rerank"]["post"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in openapi["paths"]["/health"]["get"]
