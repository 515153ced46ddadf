"""LlamaIndex adapter: a ``BaseNodePostprocessor`` that reranks with the shared scorer.

Use it as ``index.as_query_engine(node_postprocessors=[CrossEncoderRerank(...)])``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import llama_index.core.instrumentation as instrument
from llama_index.core import Settings
from llama_index.core.bridge.pydantic import ConfigDict, Field, model_validator
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from rerank_plugins._adapter_support import (
    ContextFields,
    ScorerOptions,
    resolve_scorer,
    result_metadata,
)
from rerank_plugins._context import ContextOptions, ContextReport, ContextSelection
from rerank_plugins._results import RankResult, Scorer
from rerank_plugins._tokens import length_function

__all__ = ["CrossEncoderRerank", "RerankContextEvent"]

dispatcher = instrument.get_dispatcher(__name__)

_SCORE_KEYS = ("retrieval_score", "relevance_span", "context_tokens", "duplicates_merged")
_REPORT_KEY = "context_report"


class RerankContextEvent(BaseEvent):
    """Sent after ``ReRankEndEvent`` when duplicates or a token budget are in play.

    ``report`` has the fields of the selection report: ``documents``, ``duplicates``,
    ``near_duplicates``, ``below_threshold``, ``over_budget``, ``over_top_n``, ``kept``,
    ``tokens`` and ``max_context_tokens``.
    """

    report: dict[str, int | None]

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex serialisation."""
        return "RerankContextEvent"


class CrossEncoderRerank(ScorerOptions, ContextFields, BaseNodePostprocessor):
    """Rerank retrieved nodes with a cross-encoder and keep the best ``top_n``.

    Returns new ``NodeWithScore`` objects, best first, whose ``score`` is the reranker's
    score; the first-stage score is kept in ``metadata["retrieval_score"]``. The caller's
    nodes are never changed. ``score_threshold`` drops nodes scoring below it, then
    ``top_n`` keeps at most that many of the rest. Nodes are scored on
    ``get_content(metadata_mode=...)`` (``MetadataMode.EMBED`` by default). With
    ``long_passages="window"``, ``metadata["relevance_span"]`` holds the character span
    of the best window within that scored text. Nodes without text of their own (an
    ``ImageNode``, an empty chunk) are not scored: they follow the ranked nodes, in their
    input order, with ``score=None``, and count toward neither ``top_n``, the threshold nor
    ``max_context_tokens``.

    The options of :func:`~rerank_plugins.get_scorer` are fields too (``device``, ``dtype``,
    ``backend``, ``max_length``, ``batch_size``, ``activation``, ``long_passages``...); the
    ones you set are passed to it with ``scorer_options``. Any other keyword raises.

    For a context budget, ``max_context_tokens`` keeps the best nodes whose tokens fit it,
    counted on the text the LLM reads (``MetadataMode.LLM``) with ``tokenizer`` (default:
    ``Settings.tokenizer``); a node that does not fit is skipped and smaller ones still
    fill the budget. ``deduplicate`` drops exact and near-duplicate nodes (compared on
    their text without metadata) before scoring; ``order="long_context"`` puts the best
    nodes first and last. Kept nodes carry ``metadata["context_tokens"]`` and
    ``metadata["duplicates_merged"]`` (hidden from the LLM and embedder); the report goes
    to a :class:`RerankContextEvent`, the ``RERANKING`` callback's end payload
    (``"context_report"``) and the log.

    Example:
        >>> reranker = CrossEncoderRerank(model="cross-encoder/ms-marco-MiniLM-L6-v2", top_n=3)
        >>> engine = index.as_query_engine(similarity_top_k=20, node_postprocessors=[reranker])
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    model: str | None = Field(default=None, description="Hub id or local path of the model.")
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED, description="Which metadata the scored text includes."
    )
    scorer_options: dict[str, Any] = Field(
        default_factory=dict, description="More keyword arguments of get_scorer (e.g. max_wait_ms)."
    )
    scorer: Any = Field(default=None, exclude=True, description="A ready scorer instead of model.")
    tokenizer: Callable[[str], Sequence[Any]] | str | None = Field(
        default=None,
        exclude=True,
        description="Tokenizer for the budget (text -> tokens), a tiktoken encoding or a "
        "Hugging Face tokenizer name/path; None: Settings.tokenizer.",
    )

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

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex serialisation."""
        return "RerankPluginsCrossEncoderRerank"

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        query, scored, textless = self._inputs(nodes, query_bundle)
        if not nodes:
            return []
        dispatcher.event(self._start_event(nodes, query_bundle))
        with self.callback_manager.event(
            CBEventType.RERANKING, payload=self._callback_payload(nodes, query)
        ) as event:
            selection = self._context().rank(
                self._texts(scored),
                functools.partial(self._scorer.rank, query),
                **self._context_texts(scored),
            )
            reranked = self._new_nodes(scored, textless, selection)
            event.on_end(payload=self._end_payload(reranked, selection.report))
        dispatcher.event(ReRankEndEvent(nodes=reranked))
        self._report(selection.report)
        return reranked

    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        query, scored, textless = self._inputs(nodes, query_bundle)
        if not nodes:
            return []
        dispatcher.event(self._start_event(nodes, query_bundle))
        with self.callback_manager.event(
            CBEventType.RERANKING, payload=self._callback_payload(nodes, query)
        ) as event:
            selection = await self._context().arank(
                self._texts(scored),
                functools.partial(self._scorer.arank, query),
                **self._context_texts(scored),
            )
            reranked = self._new_nodes(scored, textless, selection)
            event.on_end(payload=self._end_payload(reranked, selection.report))
        dispatcher.event(ReRankEndEvent(nodes=reranked))
        self._report(selection.report)
        return reranked

    @property
    def _scorer(self) -> Scorer:
        scorer: Scorer = self.scorer
        return scorer

    def _context(self) -> ContextOptions:
        counts = self.tokenizer is not None or self.max_context_tokens is not None
        return self._context_options(length_function=self._length_function() if counts else None)

    def _length_function(self) -> Callable[[str], int]:
        """Token counter: ``tokenizer`` (a name or a callable), else ``Settings.tokenizer``."""
        if self.tokenizer is None or callable(self.tokenizer):
            tokenize = self.tokenizer or Settings.tokenizer
            return lambda text: len(tokenize(text))
        return length_function(self.tokenizer, name="tokenizer")

    def _context_texts(self, nodes: list[NodeWithScore]) -> dict[str, list[str] | None]:
        """Count what the LLM reads; compare the nodes' own text (metadata may differ)."""
        counted = self.tokenizer is not None or self.max_context_tokens is not None
        return {
            "count_texts": [n.node.get_content(metadata_mode=MetadataMode.LLM) for n in nodes]
            if counted
            else None,
            "compare_texts": [n.node.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
            if self.deduplicate
            else None,
        }

    def _end_payload(self, reranked: list[NodeWithScore], report: ContextReport) -> dict[str, Any]:
        payload: dict[str, Any] = {EventPayload.NODES: reranked}
        if self._reports:
            payload[_REPORT_KEY] = report.as_dict()
        return payload

    def _report(self, report: ContextReport) -> None:
        if self._reports:
            dispatcher.event(RerankContextEvent(report=report.as_dict()))

    def _inputs(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None
    ) -> tuple[str, list[NodeWithScore], list[NodeWithScore]]:
        """The query, the nodes to score and the nodes without text (never scored)."""
        if query_bundle is None:
            msg = "CrossEncoderRerank needs a query: pass query_bundle=... or query_str=..."
            raise ValueError(msg)
        scored, textless = _split_by_text(nodes)
        return query_bundle.query_str, scored, textless

    def _texts(self, nodes: list[NodeWithScore]) -> list[str]:
        return [node.node.get_content(metadata_mode=self.metadata_mode) for node in nodes]

    def _start_event(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None
    ) -> ReRankStartEvent:
        return ReRankStartEvent(
            query=query_bundle,
            nodes=nodes,
            top_n=self.top_n or len(nodes),
            model_name=self.model or "",
        )

    def _callback_payload(self, nodes: list[NodeWithScore], query: str) -> dict[str, Any]:
        return {
            EventPayload.NODES: nodes,
            EventPayload.MODEL_NAME: self.model,
            EventPayload.QUERY_STR: query,
            EventPayload.TOP_K: self.top_n,
        }

    @staticmethod
    def _new_nodes(
        scored: list[NodeWithScore], textless: list[NodeWithScore], selection: ContextSelection
    ) -> list[NodeWithScore]:
        """Copies of the selected text nodes, then unscored copies of the textless nodes."""
        reranked = [_copy(scored[result.index], result) for result in selection.results]
        return reranked + [_copy(original, None) for original in textless]


def _split_by_text(nodes: list[NodeWithScore]) -> tuple[list[NodeWithScore], list[NodeWithScore]]:
    """Split nodes into those with text of their own and the rest (images, empty chunks).

    A node without text would be scored on ``""`` (or on its metadata alone) and could
    outrank real text, so it is kept out of scoring.
    """
    scored: list[NodeWithScore] = []
    textless: list[NodeWithScore] = []
    for node in nodes:
        has_text = node.node.get_content(metadata_mode=MetadataMode.NONE).strip()
        (scored if has_text else textless).append(node)
    return scored, textless


def _copy(original: NodeWithScore, result: RankResult | None) -> NodeWithScore:
    """A copy of ``original`` scored by ``result`` (None: unscored), with its bookkeeping."""
    metadata = {**original.node.metadata, "retrieval_score": original.score}
    if result is not None:
        metadata |= result_metadata(result)
    # Scores are bookkeeping: keep them out of the text LLMs and embedders see.
    bookkeeping = [key for key in _SCORE_KEYS if key in metadata]
    node = original.node.model_copy(
        update={
            "metadata": metadata,
            "excluded_llm_metadata_keys": _merged(
                original.node.excluded_llm_metadata_keys, bookkeeping
            ),
            "excluded_embed_metadata_keys": _merged(
                original.node.excluded_embed_metadata_keys, bookkeeping
            ),
        }
    )
    return NodeWithScore(node=node, score=None if result is None else result.score)


def _merged(keys: list[str], extra: list[str]) -> list[str]:
    return [*keys, *(key for key in extra if key not in keys)]
