"""michaelfeil/infinity's rerank format (``POST /rerank``; ours at ``/infinity/rerank``).

Request: ``model``, ``query``, ``documents`` (strings only), ``top_n``,
``return_documents`` (default false), ``raw_scores``. Response:
:class:`InfinityRerankResponse`, Cohere-like but ``document`` is a string, with
``object``, ``created`` and ``usage``. Our server serves it at ``/infinity/rerank`` (so
that clients such as litellm's ``infinity/`` provider work with the base URL
``.../infinity``); the client posts to ``base_url + "/rerank"``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from rerank_plugins.wire._common import MODEL, TOP_N, OnlyFalse, PositiveInt, Query, Text, Usage
from rerank_plugins.wire._dialect import Dialect, Inputs, Reply
from rerank_plugins.wire.tei import refuse_raw_scores

if TYPE_CHECKING:
    from rerank_plugins._results import RankResult

__all__ = ["DIALECT", "InfinityRerankRequest", "InfinityRerankResponse", "InfinityRerankResult"]


class InfinityRerankRequest(BaseModel):
    """Body of ``POST /infinity/rerank`` in michaelfeil/infinity's shape."""

    model: str | None = MODEL
    query: Query
    documents: list[Text] = Field(description="The documents to rank (strings only).")
    top_n: PositiveInt | None = TOP_N
    return_documents: bool = Field(
        default=False,
        strict=True,
        description="Include each document as the string `document` (Infinity's default is false).",
    )
    raw_scores: OnlyFalse = Field(
        default=False,
        description="Only false is supported: scores are the model's activated scores.",
    )


class InfinityRerankResult(BaseModel):
    """One ranked document in Infinity's shape: ``document`` is a string, not an object."""

    relevance_score: float = Field(description="The model's score; higher is more relevant.")
    index: int = Field(description="Position of the document in the request's `documents`.")
    document: str | None = Field(
        default=None, description="The document's text, when `return_documents` is true."
    )


class InfinityRerankResponse(BaseModel):
    """Response of ``POST /infinity/rerank``, best result first."""

    object: Literal["rerank"] = "rerank"
    id: str
    created: int = Field(description="Unix time of the response, in seconds.")
    model: str
    results: list[InfinityRerankResult]
    usage: Usage


def inputs(body: InfinityRerankRequest) -> Inputs:
    """The scorer's inputs; refuses ``raw_scores=true``."""
    refuse_raw_scores(body.raw_scores, "Infinity")
    return Inputs(body.query, body.documents, body.top_n)


def reply(
    body: InfinityRerankRequest, results: Sequence[RankResult], model: str, tokens: int
) -> Reply:
    """An :class:`InfinityRerankResponse` as a JSON dict."""
    items: list[dict[str, object]] = []
    for result in results:
        item: dict[str, object] = {"relevance_score": result.score, "index": result.index}
        if body.return_documents:
            item["document"] = body.documents[result.index]
        items.append(item)
    content = {
        "object": "rerank",
        "id": str(uuid.uuid4()),
        "created": int(time.time()),
        "model": model,
        "results": items,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return Reply(content)


DIALECT: Dialect[InfinityRerankRequest] = Dialect(
    name="infinity",
    path="/rerank",
    from_root=False,
    request_model=InfinityRerankRequest,
    response_model=InfinityRerankResponse,
    inputs=inputs,
    reply=reply,
    extra=(("return_documents", False), ("raw_scores", False)),
)
"""Infinity: ``model``, ``query``, ``documents`` at ``base_url + "/rerank"``."""
