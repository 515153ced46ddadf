"""LangChain adapter: a ``BaseDocumentCompressor`` that reranks with the shared scorer.

Use it alone (``compress_documents``), in a ``ContextualCompressionRetriever``, or in LCEL.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.callbacks import BaseCallbackManager, Callbacks
from langchain_core.callbacks.manager import adispatch_custom_event, dispatch_custom_event
from langchain_core.documents import BaseDocumentCompressor, Document
from pydantic import ConfigDict, Field, model_validator

from rerank_plugins._adapter_support import (
    ContextFields,
    ScorerOptions,
    resolve_scorer,
    result_metadata,
)
from rerank_plugins._context import ContextOptions, ContextSelection
from rerank_plugins._results import Scorer

__all__ = ["CONTEXT_EVENT", "CrossEncoderRerank"]


CONTEXT_EVENT = "rerank_plugins.context"
"""Name of the custom callback event that carries the context report (a dict)."""


class CrossEncoderRerank(ScorerOptions, ContextFields, BaseDocumentCompressor):
    """Rerank documents with a cross-encoder and keep the best ``top_n``.

    Returns copies of the documents, best first, with ``metadata["relevance_score"]``
    (and, with ``long_passages="window"``, ``metadata["relevance_span"]``: the character
    span of the best window); the caller's documents are never changed.
    ``score_threshold`` drops documents that score below it, then ``top_n`` keeps at most
    that many of the rest.

    The options of :func:`~rerank_plugins.get_scorer` are fields too (``device``, ``dtype``,
    ``backend``, ``max_length``, ``batch_size``, ``activation``, ``long_passages``...); the
    ones you set are passed to it with ``scorer_options``. Any other keyword raises.

    For a context budget, ``max_context_tokens`` keeps the best documents whose tokens
    (``length_function``; default: the reranker's own tokenizer) fit it; a document that
    does not fit is skipped and smaller ones still fill the budget. ``deduplicate`` drops
    exact and near-duplicate copies before scoring; ``order="long_context"`` puts the best
    documents first and last. Each kept copy then carries ``metadata["context_tokens"]``
    (when counted) and ``metadata["duplicates_merged"]`` (when it absorbed copies); the
    call's report goes to the ``rerank_plugins.context`` log and, inside a run, to a custom
    callback event named :data:`CONTEXT_EVENT`.

    Example:
        >>> reranker = CrossEncoderRerank(model="cross-encoder/ms-marco-MiniLM-L6-v2", top_n=3)
        >>> best = reranker.compress_documents(docs, "What is a cross-encoder?")
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model: str | None = None
    """Hub id or local path of the cross-encoder; loaded once per process with get_scorer."""
    scorer_options: dict[str, Any] = Field(default_factory=dict)
    """More keyword arguments of get_scorer (e.g. max_wait_ms); each option given once."""
    scorer: Any = Field(default=None, exclude=True)
    """A ready scorer (get_scorer(...) or RemoteScorer(...)) instead of model."""
    length_function: Callable[[str], int] | str | None = None
    """Token counter: a callable, a tiktoken encoding or a Hugging Face tokenizer name/path.
    None: the reranker's own tokenizer (a RemoteScorer has none: pass one)."""

    @model_validator(mode="after")
    def _load_scorer(self) -> CrossEncoderRerank:
        options = self.chosen_scorer_options(self.scorer_options)
        self.scorer = resolve_scorer(self.model, self.scorer, options)
        if self.model is None:
            self.model = self.scorer.model
        return self

    @model_validator(mode="after")
    def _check_context(self) -> CrossEncoderRerank:
        self._context()  # fail now on bad options or an unknown tokenizer, not at first use
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
        texts = [doc.page_content for doc in documents]
        selection = self._context().rank(texts, functools.partial(self._scorer.rank, query))
        if _in_run(callbacks) and self._reports:
            dispatch_custom_event(
                CONTEXT_EVENT, selection.report.as_dict(), config={"callbacks": callbacks}
            )
        return self._copies(documents, selection)

    async def acompress_documents(
        self,
        documents: Sequence[Document],
        query: str,
        callbacks: Callbacks | None = None,
    ) -> Sequence[Document]:
        """Async :meth:`compress_documents`; awaits the scorer without blocking the loop."""
        if not documents:
            return []
        texts = [doc.page_content for doc in documents]
        selection = await self._context().arank(texts, functools.partial(self._scorer.arank, query))
        if _in_run(callbacks) and self._reports:
            await adispatch_custom_event(
                CONTEXT_EVENT, selection.report.as_dict(), config={"callbacks": callbacks}
            )
        return self._copies(documents, selection)

    @property
    def _scorer(self) -> Scorer:
        scorer: Scorer = self.scorer
        return scorer

    def _context(self) -> ContextOptions:
        return self._context_options(
            length_function=self.length_function,
            default_length_function=getattr(self.scorer, "count_text_tokens", None),
        )

    @staticmethod
    def _copies(documents: Sequence[Document], selection: ContextSelection) -> list[Document]:
        copies = []
        for result in selection.results:
            original = documents[result.index]
            metadata = {
                **original.metadata,
                "relevance_score": result.score,
                **result_metadata(result),
            }
            copies.append(original.model_copy(update={"metadata": metadata}))
        return copies


def _in_run(callbacks: Callbacks | None) -> bool:
    """Whether custom events can be sent: LangChain needs a parent run for them."""
    return isinstance(callbacks, BaseCallbackManager) and callbacks.parent_run_id is not None
