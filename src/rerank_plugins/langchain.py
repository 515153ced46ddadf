"""LangChain adapter: a ``BaseDocumentCompressor`` that reranks with the shared scorer.

Use it alone (``compress_documents``), in a ``ContextualCompressionRetriever``, or in LCEL.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, field_validator, model_validator

from rerank_plugins._adapter_support import ScorerOptions, resolve_scorer
from rerank_plugins._results import RankResult, Scorer, check_selection

__all__ = ["CrossEncoderRerank"]


class CrossEncoderRerank(ScorerOptions, BaseDocumentCompressor):
    """Rerank documents with a cross-encoder and keep the best ``top_n``.

    Returns copies of the documents, best first, with ``metadata["relevance_score"]``
    (and, with ``long_passages="window"``, ``metadata["relevance_span"]``: the character
    span of the best window); the caller's documents are never changed.
    ``score_threshold`` drops documents that score below it, then ``top_n`` keeps at most
    that many of the rest.

    The options of :func:`~rerank_plugins.get_scorer` are fields too (``device``, ``dtype``,
    ``backend``, ``max_length``, ``batch_size``, ``activation``, ``long_passages``...); the
    ones you set are passed to it with ``scorer_options``. Any other keyword raises.

    Example:
        >>> reranker = CrossEncoderRerank(model="cross-encoder/ms-marco-MiniLM-L6-v2", top_n=3)
        >>> best = reranker.compress_documents(docs, "What is a cross-encoder?")
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str | None = None
    """Hub id or local path of the cross-encoder; loaded once per process with get_scorer."""
    top_n: int | None = 3
    """How many documents to keep; None keeps them all, reordered."""
    score_threshold: float | None = None
    """Drop documents scoring below this (before top_n)."""
    scorer_options: dict[str, Any] = Field(default_factory=dict)
    """More keyword arguments of get_scorer (e.g. max_wait_ms); each option given once."""
    scorer: Any = Field(default=None, exclude=True)
    """A ready scorer (get_scorer(...) or RemoteScorer(...)) instead of model."""

    @field_validator("top_n")
    @classmethod
    def _check_top_n(cls, value: int | None) -> int | None:
        check_selection(value, None)
        return value

    @field_validator("score_threshold")
    @classmethod
    def _check_score_threshold(cls, value: float | None) -> float | None:
        check_selection(None, value)
        return value

    @model_validator(mode="after")
    def _load_scorer(self) -> CrossEncoderRerank:
        options = self.chosen_scorer_options(self.scorer_options)
        self.scorer = resolve_scorer(self.model, self.scorer, options)
        if self.model is None:
            self.model = self.scorer.model
        return self

    def compress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Score ``documents`` against ``query``; return the best, best first."""
        if not documents:
            return []
        results = self._scorer.rank(
            query,
            [doc.page_content for doc in documents],
            top_n=self.top_n,
            score_threshold=self.score_threshold,
        )
        return self._copies(documents, results)

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents`; awaits the scorer without blocking the loop."""
        if not documents:
            return []
        results = await self._scorer.arank(
            query,
            [doc.page_content for doc in documents],
            top_n=self.top_n,
            score_threshold=self.score_threshold,
        )
        return self._copies(documents, results)

    @property
    def _scorer(self) -> Scorer:
        scorer: Scorer = self.scorer
        return scorer

    @staticmethod
    def _copies(documents: Sequence[Document], results: list[RankResult]) -> list[Document]:
        copies = []
        for result in results:
            original = documents[result.index]
            metadata = {**original.metadata, "relevance_score": result.score}
            if result.span is not None:
                metadata["relevance_span"] = result.span
            copies.append(original.model_copy(update={"metadata": metadata}))
        return copies
