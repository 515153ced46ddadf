"""LlamaIndex adapter: a ``BaseNodePostprocessor`` that reranks with the shared scorer.

Use it as ``index.as_query_engine(node_postprocessors=[CrossEncoderRerank(...)])``.
"""

from __future__ import annotations

from typing import Any

import llama_index.core.instrumentation as instrument
from llama_index.core.bridge.pydantic import ConfigDict, Field, field_validator, model_validator
from llama_index.core.callbacks import CBEventType, EventPayload
from llama_index.core.instrumentation.events.rerank import ReRankEndEvent, ReRankStartEvent
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle

from rerank_plugins._adapter_support import ScorerOptions, resolve_scorer
from rerank_plugins._results import RankResult, Scorer, check_selection

__all__ = ["CrossEncoderRerank"]

dispatcher = instrument.get_dispatcher(__name__)

_SCORE_KEYS = ("retrieval_score", "relevance_span")


class CrossEncoderRerank(ScorerOptions, BaseNodePostprocessor):
    """Rerank retrieved nodes with a cross-encoder and keep the best ``top_n``.

    Returns new ``NodeWithScore`` objects, best first, whose ``score`` is the reranker's
    score; the first-stage score is kept in ``metadata["retrieval_score"]``. The caller's
    nodes are never changed. ``score_threshold`` drops nodes scoring below it, then
    ``top_n`` keeps at most that many of the rest. Nodes are scored on
    ``get_content(metadata_mode=...)`` (``MetadataMode.EMBED`` by default). With
    ``long_passages="window"``, ``metadata["relevance_span"]`` holds the character span
    of the best window within that scored text. Nodes without text of their own (an
    ``ImageNode``, an empty chunk) are not scored: they follow the ranked nodes, in their
    input order, with ``score=None``, and count toward neither ``top_n`` nor the threshold.

    The options of :func:`~rerank_plugins.get_scorer` are fields too (``device``, ``dtype``,
    ``backend``, ``max_length``, ``batch_size``, ``activation``, ``long_passages``...); the
    ones you set are passed to it with ``scorer_options``. Any other keyword raises.

    Example:
        >>> reranker = CrossEncoderRerank(model="cross-encoder/ms-marco-MiniLM-L6-v2", top_n=3)
        >>> engine = index.as_query_engine(similarity_top_k=20, node_postprocessors=[reranker])
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, protected_namespaces=())

    model: str | None = Field(default=None, description="Hub id or local path of the model.")
    top_n: int | None = Field(default=3, description="Nodes to keep; None keeps all, reordered.")
    score_threshold: float | None = Field(default=None, description="Drop nodes scoring below.")
    metadata_mode: MetadataMode = Field(
        default=MetadataMode.EMBED, description="Which metadata the scored text includes."
    )
    scorer_options: dict[str, Any] = Field(
        default_factory=dict, description="More keyword arguments of get_scorer (e.g. max_wait_ms)."
    )
    scorer: Any = Field(default=None, exclude=True, description="A ready scorer instead of model.")

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

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex serialisation."""
        return "RerankPluginsCrossEncoderRerank"

    def _postprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        query, texts = self._inputs(nodes, query_bundle)
        if not nodes:
            return []
        dispatcher.event(self._start_event(nodes, query_bundle))
        with self.callback_manager.event(
            CBEventType.RERANKING, payload=self._callback_payload(nodes, query)
        ) as event:
            results = self._scorer.rank(
                query, texts, top_n=self.top_n, score_threshold=self.score_threshold
            )
            reranked = self._new_nodes(nodes, results)
            event.on_end(payload={EventPayload.NODES: reranked})
        dispatcher.event(ReRankEndEvent(nodes=reranked))
        return reranked

    async def _apostprocess_nodes(
        self,
        nodes: list[NodeWithScore],
        query_bundle: QueryBundle | None = None,
    ) -> list[NodeWithScore]:
        query, texts = self._inputs(nodes, query_bundle)
        if not nodes:
            return []
        dispatcher.event(self._start_event(nodes, query_bundle))
        with self.callback_manager.event(
            CBEventType.RERANKING, payload=self._callback_payload(nodes, query)
        ) as event:
            results = await self._scorer.arank(
                query, texts, top_n=self.top_n, score_threshold=self.score_threshold
            )
            reranked = self._new_nodes(nodes, results)
            event.on_end(payload={EventPayload.NODES: reranked})
        dispatcher.event(ReRankEndEvent(nodes=reranked))
        return reranked

    @property
    def _scorer(self) -> Scorer:
        scorer: Scorer = self.scorer
        return scorer

    def _inputs(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None
    ) -> tuple[str, list[str]]:
        if query_bundle is None:
            msg = "CrossEncoderRerank needs a query: pass query_bundle=... or query_str=..."
            raise ValueError(msg)
        texts = [
            node.node.get_content(metadata_mode=self.metadata_mode)
            for node in _split_by_text(nodes)[0]
        ]
        return query_bundle.query_str, texts

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
    def _new_nodes(nodes: list[NodeWithScore], results: list[RankResult]) -> list[NodeWithScore]:
        """Scored copies of the ranked text nodes, then unscored copies of textless nodes."""
        scored, textless = _split_by_text(nodes)
        reranked = [_copy(scored[r.index], r.score, r.span) for r in results]
        return reranked + [_copy(original, None, None) for original in textless]


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


def _copy(
    original: NodeWithScore, score: float | None, span: tuple[int, int] | None
) -> NodeWithScore:
    metadata = {**original.node.metadata, "retrieval_score": original.score}
    if span is not None:
        metadata["relevance_span"] = span
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
    return NodeWithScore(node=node, score=score)


def _merged(keys: list[str], extra: list[str]) -> list[str]:
    return [*keys, *(key for key in extra if key not in keys)]
