"""Hugging Face text-embeddings-inference's rerank format (``POST /rerank``).

Request: ``query``, ``texts``, ``truncate``, ``truncation_direction``, ``raw_scores``,
``return_text`` (no ``model``: a TEI server serves one). Response: a bare JSON list of
:class:`TEIRank` (``index``, ``score``, ``text`` when asked), best first, with the
``x-compute-tokens`` and ``x-compute-characters`` headers. Our server tells this body
from Cohere's at ``/rerank`` by its ``texts`` field.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, RootModel

from rerank_plugins.wire._common import OnlyFalse, OnlyRight, Query, Text
from rerank_plugins.wire._dialect import Dialect, Inputs, Reply, UnsupportedFieldError

if TYPE_CHECKING:
    from rerank_plugins._results import RankResult

__all__ = ["DIALECT", "TEIRank", "TEIRerankRequest", "TEIRerankResponse", "refuse_raw_scores"]


class TEIRerankRequest(BaseModel):
    """Body of ``POST /rerank`` in Hugging Face text-embeddings-inference's shape."""

    query: Query
    texts: list[Text] = Field(description="The texts to rank.")
    truncate: bool | None = Field(
        default=False,
        strict=True,
        description="Accepted and ignored: inputs longer than the model's max_length are "
        "always truncated (TEI answers 413 when this is false).",
    )
    truncation_direction: OnlyRight = Field(
        default="Right", description="Only 'Right' is supported (the end of the text is cut)."
    )
    raw_scores: OnlyFalse = Field(
        default=False,
        description="Only false is supported: scores are the model's activated scores.",
    )
    return_text: bool = Field(
        default=False, strict=True, description="Include each text as `text`."
    )


class TEIRank(BaseModel):
    """One item of TEI's response (a bare JSON list of these, best first)."""

    index: int
    score: float
    text: str | None = Field(default=None, description="Present when `return_text` is true.")


class TEIRerankResponse(RootModel[list[TEIRank]]):
    """TEI's response: a bare list of :class:`TEIRank`, best first."""


def refuse_raw_scores(raw_scores: bool, service: str) -> None:
    """TEI and Infinity can return logits; this server returns activated scores only."""
    if raw_scores:
        msg = (
            "raw_scores=true is not supported: this server returns the model's scores after "
            f"its activation ({service}'s raw_scores=false). Send raw_scores=false or omit it."
        )
        raise UnsupportedFieldError(msg)


def inputs(body: TEIRerankRequest) -> Inputs:
    """The scorer's inputs; refuses ``raw_scores=true`` and left truncation."""
    refuse_raw_scores(body.raw_scores, "TEI")
    if body.truncation_direction.lower() != "right":
        msg = (
            f"truncation_direction={body.truncation_direction!r} is not supported: texts "
            "longer than the model's max_length lose their end. Send 'Right' or omit it."
        )
        raise UnsupportedFieldError(msg)
    return Inputs(body.query, body.texts)


def reply(body: TEIRerankRequest, results: Sequence[RankResult], model: str, tokens: int) -> Reply:
    """TEI's bare list, and its ``x-compute-*`` headers."""
    items: list[dict[str, object]] = []
    for result in results:
        item: dict[str, object] = {"index": result.index, "score": result.score}
        if body.return_text:
            item["text"] = body.texts[result.index]
        items.append(item)
    characters = len(body.query) * len(body.texts) + sum(len(t) for t in body.texts)
    headers = {"x-compute-tokens": str(tokens), "x-compute-characters": str(characters)}
    return Reply(items, headers)


DIALECT: Dialect[TEIRerankRequest] = Dialect(
    name="tei",
    path="/rerank",
    from_root=False,
    request_model=TEIRerankRequest,
    response_model=TEIRerankResponse,
    inputs=inputs,
    reply=reply,
    documents_field="texts",
    extra=(("truncate", True), ("raw_scores", False), ("return_text", False)),
    sends_model=False,
)
"""TEI: ``query`` and ``texts`` at ``base_url + "/rerank"``; ``model`` is never sent."""
