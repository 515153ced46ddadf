"""Cohere's v2 rerank format (``POST /v2/rerank``), which vLLM also serves.

Request: ``model``, ``query``, ``documents`` (strings; objects too, for vLLM), ``top_n``,
``max_tokens_per_doc``; Cohere v2 dropped ``return_documents``, which we still accept. Our
server answers :class:`~rerank_plugins.wire.cohere_v1.RerankResponse` with ``api_version``
2. This is the client's ``cohere`` protocol: Cohere's API needs ``model``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field

from rerank_plugins.wire._common import (
    MODEL,
    RETURN_DOCUMENTS,
    TOP_N,
    Document,
    PositiveInt,
    Query,
    document_text,
)
from rerank_plugins.wire._dialect import Dialect, Inputs, Reply
from rerank_plugins.wire.cohere_v1 import CohereResponse, cohere_reply

if TYPE_CHECKING:
    from rerank_plugins._results import RankResult

__all__ = ["DIALECT", "RerankV2Request"]


class RerankV2Request(BaseModel):
    """Body of ``POST /v2/rerank`` (Cohere v2, vLLM)."""

    model: str | None = MODEL
    query: Query
    documents: list[Document] = Field(
        description="The documents to rank: strings (Cohere v2), or objects with a `text` field."
    )
    top_n: PositiveInt | None = TOP_N
    return_documents: bool = RETURN_DOCUMENTS
    max_tokens_per_doc: PositiveInt | None = Field(
        default=None,
        description="Cohere v2: accepted and ignored; documents are truncated to the model's "
        "max_length.",
    )


def inputs(body: RerankV2Request) -> Inputs:
    """The scorer's inputs: the ``text`` of each document."""
    return Inputs(body.query, [document_text(doc) for doc in body.documents], body.top_n)


def reply(body: RerankV2Request, results: Sequence[RankResult], model: str, tokens: int) -> Reply:
    """Our answer: ``RerankResponse`` with ``api_version`` 2."""
    return cohere_reply(
        body.documents, body.return_documents, results, model, tokens, api_version="2"
    )


DIALECT: Dialect[RerankV2Request] = Dialect(
    name="cohere",
    path="/v2/rerank",
    from_root=True,
    request_model=RerankV2Request,
    response_model=CohereResponse,
    inputs=inputs,
    reply=reply,
)
"""Cohere v2 (the client's ``cohere``): ``model``, ``query``, ``documents`` at ``/v2/rerank``."""
