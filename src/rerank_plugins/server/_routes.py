"""The routes: which path takes which dialects' bodies, and their OpenAPI description.

Each rerank path is one :class:`RerankRoute`: a body adapter (one dialect's request model,
or a union of several on one path) and the dialects that answer it, chosen by the type of
the parsed body. The handler is the same for every path: parse, convert the body to the
scorer's inputs (:attr:`~rerank_plugins.wire.Dialect.inputs`), rank, and answer in the
body's dialect (:attr:`~rerank_plugins.wire.Dialect.reply`). A new path for a dialect is
one more entry in :data:`RERANK_ROUTES`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from pydantic import TypeAdapter

from rerank_plugins.server._auth import auth_dependencies
from rerank_plugins.server._defaults import REQUEST_TIMEOUT_HEADER
from rerank_plugins.server._errors import APIError
from rerank_plugins.server._metrics import CONTENT_TYPE
from rerank_plugins.server._ranking import rank
from rerank_plugins.server._requests import parse_body
from rerank_plugins.server._scorer_state import ready_scorer
from rerank_plugins.server.schemas import (
    INFINITY_BODY_ADAPTER,
    LEGACY_BODY_ADAPTER,
    V1_BODY_ADAPTER,
    V2_BODY_ADAPTER,
    ErrorBody,
    HealthResponse,
    InfinityRerankResponse,
    RerankResponse,
    TEIRank,
)
from rerank_plugins.wire import Dialect, UnsupportedFieldError, cohere_v1, cohere_v2, infinity, tei

if TYPE_CHECKING:
    from rerank_plugins.server._metrics import ServerMetrics

__all__ = ["RERANK_ROUTES", "RerankRoute", "add_routes"]

_TEXTS_HINT = " TEI-style bodies with 'texts' are served at POST /rerank."


@dataclass(frozen=True)
class RerankRoute:
    """One rerank path: the bodies it parses and the dialects that answer them."""

    path: str
    name: str
    """The endpoint's name, part of its OpenAPI ``operationId`` (kept stable for clients)."""
    summary: str
    adapter: TypeAdapter[Any]
    dialects: tuple[Dialect[Any], ...]
    ok: dict[str, Any]
    """The OpenAPI description of its 200 response."""

    def dialect_for(self, body: object) -> Dialect[Any]:
        """The dialect whose request model ``body`` (parsed by :attr:`adapter`) is."""
        for dialect in self.dialects:
            if isinstance(body, dialect.request_model):
                return dialect
        msg = f"{self.path} parsed a {type(body).__name__}, which none of its dialects takes."
        raise TypeError(msg)

    @property
    def takes_texts(self) -> bool:
        """Whether a body with ``texts`` (TEI's) is served here."""
        return any(dialect.documents_field == "texts" for dialect in self.dialects)


RERANK_ROUTES = (
    RerankRoute(
        path="/rerank",
        name="rerank",
        summary="Rerank (Cohere v1 / vLLM, or TEI when the body has `texts`)",
        adapter=LEGACY_BODY_ADAPTER,
        dialects=(cohere_v1.DIALECT, tei.DIALECT),
        ok={
            "description": "Cohere/vLLM response, or TEI's bare list for a TEI body",
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/RerankResponse"},
                            {"type": "array", "items": {"$ref": "#/components/schemas/TEIRank"}},
                        ]
                    }
                }
            },
        },
    ),
    RerankRoute(
        path="/v1/rerank",
        name="rerank_v1",
        summary="Rerank (Cohere v1, Jina, vLLM)",
        adapter=V1_BODY_ADAPTER,
        dialects=(cohere_v1.DIALECT,),
        ok={"model": RerankResponse},
    ),
    RerankRoute(
        path="/v2/rerank",
        name="rerank_v2",
        summary="Rerank (Cohere v2, vLLM)",
        adapter=V2_BODY_ADAPTER,
        dialects=(cohere_v2.DIALECT,),
        ok={"model": RerankResponse},
    ),
    RerankRoute(
        path="/infinity/rerank",
        name="rerank_infinity",
        summary="Rerank (Infinity: `document` is a string)",
        adapter=INFINITY_BODY_ADAPTER,
        dialects=(infinity.DIALECT,),
        ok={"model": InfinityRerankResponse},
    ),
)
"""Every rerank path, in the order of the OpenAPI document."""

_ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": description}
    for status, description in (
        (401, "Missing or wrong API key"),
        (413, "Too many documents, a document is too long, or the body is too large"),
        (422, "Malformed request"),
        (429, "Overloaded; retry later"),
        (503, "The model is loading or failed to load"),
    )
}
_RERANK_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERROR_RESPONSES,
    503: {
        "model": ErrorBody,
        "description": "The model is loading or failed to load, or the request cannot "
        "finish before its deadline",
    },
    504: {"model": ErrorBody, "description": "The request's deadline passed"},
}
_TIMEOUT_HEADER = {
    "name": REQUEST_TIMEOUT_HEADER,
    "in": "header",
    "required": False,
    "description": "Seconds this client waits: 503 when the server estimates it cannot "
    "answer in time, 504 when the time passes while the request waits or is scored.",
    "schema": {"type": "number", "exclusiveMinimum": 0},
}


def add_routes(app: FastAPI, *, api_key: str | None, metrics: ServerMetrics) -> set[str]:
    """Add the rerank, ``/health`` and ``/metrics`` endpoints; returns their paths."""
    auth = auth_dependencies(api_key)
    components: dict[str, Any] = {}
    for route in RERANK_ROUTES:
        app.add_api_route(
            route.path,
            _rerank_endpoint(route),
            methods=["POST"],
            name=route.name,
            dependencies=auth,
            response_model=None,
            summary=route.summary,
            openapi_extra={
                "requestBody": _body_schema(route.adapter, components),
                "parameters": [_TIMEOUT_HEADER],
            },
            responses={200: route.ok, **_RERANK_ERRORS},
        )

    @app.get(
        "/health",
        response_model=None,
        summary="Readiness: 200 once the model is loaded",
        responses={200: {"model": HealthResponse}, 503: _ERROR_RESPONSES[503]},
    )
    async def health(request: Request) -> Response:
        scorer = ready_scorer(request)
        return JSONResponse({"status": "ok", "model": scorer.model})

    @app.get(
        "/metrics",
        dependencies=auth,
        response_model=None,
        summary="Prometheus metrics",
        responses={
            200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text"},
            401: _ERROR_RESPONSES[401],
        },
    )
    async def prometheus_metrics(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    _install_openapi_components(app, components, models=(RerankResponse, TEIRank))
    return {route.path for route in RERANK_ROUTES} | {"/health", "/metrics"}


def _rerank_endpoint(route: RerankRoute) -> Any:
    # FastAPI reads the endpoint's signature at runtime: `Request` must be importable here.
    texts_hint = "" if route.takes_texts else _TEXTS_HINT

    async def rerank(request: Request) -> Response:
        scorer = ready_scorer(request)
        body = await parse_body(request, route.adapter, texts_hint=texts_hint)
        dialect = route.dialect_for(body)
        try:
            inputs = dialect.inputs(body)
        except UnsupportedFieldError as exc:
            raise APIError(422, str(exc)) from exc
        results, tokens = await rank(request, scorer, inputs)
        reply = dialect.reply(body, results, str(scorer.model), tokens)
        return JSONResponse(reply.content, headers=reply.headers)

    return rerank


# --- OpenAPI ---------------------------------------------------------------------------------


def _body_schema(adapter: TypeAdapter[Any], components: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI ``requestBody`` for a body parsed by hand; its models go to ``components``."""
    schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    title = schema.get("title")
    if schema.get("type") == "object" and isinstance(title, str):
        components[title] = schema
        schema = {"$ref": f"#/components/schemas/{title}"}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _install_openapi_components(
    app: FastAPI, components: dict[str, Any], *, models: Sequence[type[Any]]
) -> None:
    """Add the hand-parsed bodies' schemas to the OpenAPI document FastAPI generates."""
    for model in models:
        _body_schema(TypeAdapter(model), components)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, value in components.items():
                schemas.setdefault(name, value)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
