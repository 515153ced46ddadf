"""Cohere's v1 rerank format (``POST /v1/rerank``), which Jina and vLLM also speak.

Request: ``query``, ``documents`` (strings, or objects whose ``text`` is ranked), ``top_n``,
``return_documents``, ``model``, plus Cohere's ``rank_fields`` and ``max_chunks_per_doc``.
Our server answers :class:`RerankResponse` (Cohere's ``id``, ``results`` and ``meta`` plus
Jina's ``model`` and ``usage``), at ``/v1/rerank`` and, for a body without ``texts``, at
``/rerank``. The client does not use this format by name: its ``jina`` and ``vllm``
protocols post this body. Unknown request fields are ignored, as Cohere, Jina and vLLM
accept many vendor-specific extras.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from rerank_plugins.wire._common import (
    MODEL,
    RETURN_DOCUMENTS,
    TOP_N,
    Document,
    DocumentObject,
    OnlyText,
    PositiveInt,
    Query,
    ServiceModel,
    ServiceResult,
    Usage,
    document_json,
    document_text,
)
from rerank_plugins.wire._dialect import Dialect, Inputs, Reply, UnsupportedFieldError

if TYPE_CHECKING:
    from rerank_plugins._results import RankResult

__all__ = [
    "DIALECT",
    "ApiMeta",
    "ApiVersion",
    "BilledUnits",
    "CohereResponse",
    "MetaTokens",
    "RerankRequest",
    "RerankResponse",
    "RerankResult",
    "cohere_reply",
]

_SEARCH_UNIT_DOCUMENTS = 100  # Cohere bills one search unit per query and 100 documents.


class RerankRequest(BaseModel):
    """Body of ``POST /rerank`` and ``POST /v1/rerank`` (Cohere v1, Jina, vLLM)."""

    model: str | None = MODEL
    query: Query
    documents: list[Document] = Field(
        description="The documents to rank: strings, or objects with a `text` field."
    )
    top_n: PositiveInt | None = TOP_N
    return_documents: bool = RETURN_DOCUMENTS
    rank_fields: OnlyText | None = Field(
        default=None,
        description="Cohere v1: only null or ['text'] is supported; the `text` field is ranked.",
    )
    max_chunks_per_doc: PositiveInt | None = Field(
        default=None,
        description="Cohere v1: accepted and ignored; documents are truncated to the model's "
        "max_length instead of being chunked.",
    )


# --- our server's response -------------------------------------------------------------------


class RerankResult(BaseModel):
    """One ranked document."""

    index: int = Field(description="Position of the document in the request's `documents`.")
    relevance_score: float = Field(description="The model's score; higher is more relevant.")
    document: DocumentObject | None = Field(
        default=None, description="The document, when `return_documents` is true."
    )


class ApiVersion(BaseModel):
    """Cohere's ``meta.api_version``."""

    version: str


class BilledUnits(BaseModel):
    """Cohere's ``meta.billed_units``: one search unit per 100 documents."""

    search_units: int


class MetaTokens(BaseModel):
    """Cohere's ``meta.tokens``."""

    input_tokens: int
    output_tokens: int


class ApiMeta(BaseModel):
    """Cohere's ``meta`` object."""

    api_version: ApiVersion
    billed_units: BilledUnits
    tokens: MetaTokens


class RerankResponse(BaseModel):
    """Response of the Cohere/Jina/vLLM endpoints, best result first."""

    id: str
    model: str
    results: list[RerankResult]
    usage: Usage
    meta: ApiMeta


# --- Cohere's own response -------------------------------------------------------------------


class CohereResponse(ServiceModel):
    """Cohere's rerank response (v1 and v2): ``id``, ``results`` best first, ``meta``."""

    id: str | None = None
    results: list[ServiceResult]
    meta: dict[str, object] | None = None


# --- conversions -----------------------------------------------------------------------------


def inputs(body: RerankRequest) -> Inputs:
    """The scorer's inputs; only the ``text`` of each document is ranked."""
    if body.rank_fields not in (None, ["text"]):
        msg = (
            f"rank_fields={body.rank_fields!r} is not supported: only the 'text' field of "
            "each document is ranked. Put the text to rank in 'text' (for several fields, "
            "join them, e.g. as 'title: ...\\nbody: ...') and omit rank_fields."
        )
        raise UnsupportedFieldError(msg)
    return Inputs(body.query, [document_text(doc) for doc in body.documents], body.top_n)


def cohere_reply(
    documents: Sequence[str | DocumentObject],
    return_documents: bool,
    results: Sequence[RankResult],
    model: str,
    tokens: int,
    *,
    api_version: str,
) -> Reply:
    """A :class:`RerankResponse` as a JSON dict (built directly, not validated again)."""
    items: list[dict[str, object]] = []
    for result in results:
        item: dict[str, object] = {"index": result.index, "relevance_score": result.score}
        if return_documents:
            item["document"] = document_json(documents[result.index])
        items.append(item)
    search_units = max(1, math.ceil(len(documents) / _SEARCH_UNIT_DOCUMENTS))
    content = {
        "id": str(uuid.uuid4()),
        "model": model,
        "results": items,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "meta": {
            "api_version": {"version": api_version},
            "billed_units": {"search_units": search_units},
            "tokens": {"input_tokens": tokens, "output_tokens": 0},
        },
    }
    return Reply(content)


def reply(body: RerankRequest, results: Sequence[RankResult], model: str, tokens: int) -> Reply:
    """Our answer to a v1 body: :class:`RerankResponse` with ``api_version`` 1."""
    return cohere_reply(
        body.documents, body.return_documents, results, model, tokens, api_version="1"
    )


DIALECT: Dialect[RerankRequest] = Dialect(
    name="cohere-v1",
    path="/v1/rerank",
    from_root=True,
    request_model=RerankRequest,
    response_model=CohereResponse,
    inputs=inputs,
    reply=reply,
)
"""Cohere v1: ``query``, ``documents`` and ``model`` at ``/v1/rerank`` of the server root."""
