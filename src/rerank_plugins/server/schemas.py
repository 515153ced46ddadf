"""The server's bodies: which request shapes each path takes, health and error bodies.

The request and response models of each wire format live in :mod:`rerank_plugins.wire`
(one module per dialect) and are re-exported here under their old names. This module adds
what is the server's own: the union of Cohere and TEI bodies that ``POST /rerank`` takes,
the type adapters the handlers parse with, and the ``/health`` and error bodies.

The response models exist for the OpenAPI document; the handlers build plain dicts of the
same shape, which skips a second validation pass on every response.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Discriminator, Field, Tag, TypeAdapter

from rerank_plugins.wire._common import (
    DOCUMENT_OBJECT_TAG,
    DOCUMENT_STRING_TAG,
    DocumentObject,
    Usage,
)
from rerank_plugins.wire.cohere_v1 import (
    ApiMeta,
    ApiVersion,
    BilledUnits,
    MetaTokens,
    RerankRequest,
    RerankResponse,
    RerankResult,
)
from rerank_plugins.wire.cohere_v2 import RerankV2Request
from rerank_plugins.wire.infinity import (
    InfinityRerankRequest,
    InfinityRerankResponse,
    InfinityRerankResult,
)
from rerank_plugins.wire.tei import TEIRank, TEIRerankRequest

__all__ = [
    "ApiMeta",
    "ApiVersion",
    "BilledUnits",
    "DocumentObject",
    "ErrorBody",
    "ErrorDetail",
    "HealthResponse",
    "InfinityRerankRequest",
    "InfinityRerankResponse",
    "InfinityRerankResult",
    "MetaTokens",
    "RerankRequest",
    "RerankResponse",
    "RerankResult",
    "RerankV2Request",
    "TEIRank",
    "TEIRerankRequest",
    "Usage",
]

# Tags of the tagged unions (documents in `wire`, bodies here); they appear in pydantic's
# error locations and `_errors.format_location` drops them so that users see
# `documents[2]`, not `documents.2.string-document`.
COHERE_BODY_TAG = "cohere-request"
TEI_BODY_TAG = "tei-request"
UNION_TAGS = frozenset({DOCUMENT_STRING_TAG, DOCUMENT_OBJECT_TAG, COHERE_BODY_TAG, TEI_BODY_TAG})


def _body_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        return TEI_BODY_TAG if "texts" in value else COHERE_BODY_TAG
    return None


# `POST /rerank` takes both shapes: TEI clients post to /rerank, and so do Cohere v1 and
# vLLM's legacy route. A body with `texts` is a TEI request.
LegacyRerankBody = Annotated[
    Annotated[RerankRequest, Tag(COHERE_BODY_TAG)] | Annotated[TEIRerankRequest, Tag(TEI_BODY_TAG)],
    Discriminator(
        _body_tag,
        custom_error_type="body_type",
        custom_error_message="Request body should be a JSON object",
    ),
]

LEGACY_BODY_ADAPTER: TypeAdapter[RerankRequest | TEIRerankRequest] = TypeAdapter(LegacyRerankBody)
V1_BODY_ADAPTER: TypeAdapter[RerankRequest] = TypeAdapter(RerankRequest)
V2_BODY_ADAPTER: TypeAdapter[RerankV2Request] = TypeAdapter(RerankV2Request)
INFINITY_BODY_ADAPTER: TypeAdapter[InfinityRerankRequest] = TypeAdapter(InfinityRerankRequest)


class HealthResponse(BaseModel):
    """Body of ``GET /health`` once the model is loaded."""

    status: str
    model: str


class ErrorDetail(BaseModel):
    """The ``error`` object of every error response."""

    type: str = Field(description="A stable machine-readable error type.")
    message: str = Field(description="What was wrong and how to fix it.")
    code: int = Field(description="The HTTP status code.")


class ErrorBody(BaseModel):
    """Every error response: ``{"error": {...}, "detail": message}``."""

    error: ErrorDetail
    detail: str = Field(description="The same message, where FastAPI clients look for it.")
