"""The LlamaIndex adapter's context options: budget, duplicates, order, events and payloads."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Settings
from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks import CallbackManager, CBEventType
from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

from rerank_plugins import get_scorer
from rerank_plugins.llama_index import CrossEncoderRerank, RerankContextEvent
from tests._tiny_models import JA_RANKING_CASES, RANKING_CASES

pytestmark = pytest.mark.integration

QUERY, TEXTS, RELEVANT = RANKING_CASES[0]


def make_nodes(texts: list[str] = TEXTS) -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(text=t, id_=f"n{i}", metadata={"source": f"doc{i}"}), score=i)
        for i, t in enumerate(texts)
    ]


def llm_text(node: NodeWithScore) -> str:
    return node.node.get_content(metadata_mode=MetadataMode.LLM)


class Events(BaseEventHandler):
    events: list[BaseEvent] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "Events"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event)


class Ends(BaseCallbackHandler):
    def __init__(self) -> None:
        super().__init__([], [])
        self.payloads: list[Any] = []

    def on_event_start(self, event_type: CBEventType, payload: Any = None, **kw: Any) -> str:
        return kw.get("event_id", "")

    def on_event_end(self, event_type: CBEventType, payload: Any = None, **kw: Any) -> None:
        if event_type == CBEventType.RERANKING:
            self.payloads.append(payload)

    def start_trace(self, trace_id: str | None = None) -> None:
        pass

    def end_trace(self, trace_id: str | None = None, trace_map: Any = None) -> None:
        pass


def test_default_counter_is_settings_tokenizer_on_the_llm_text(tiny_bert: Path) -> None:
    reranker = CrossEncoderRerank(model=str(tiny_bert), top_n=None, max_context_tokens=60)
    kept = reranker.postprocess_nodes(make_nodes(), query_str=QUERY)
    originals = {n.node.node_id: n for n in make_nodes()}
    counts = [len(Settings.tokenizer(llm_text(originals[n.node.node_id]))) for n in kept]
    assert [n.node.metadata["context_tokens"] for n in kept] == counts
    assert sum(counts) <= 60
    assert "context_tokens" not in llm_text(kept[0]), "bookkeeping stays out of the LLM text"


def test_tokenizer_callable_and_budget(tiny_bert: Path) -> None:
    ranked = get_scorer(str(tiny_bert)).rank(QUERY, [llm_text(n) for n in make_nodes()])
    budget = len(llm_text(make_nodes()[ranked[0].index]).split()) + 1
    reranker = CrossEncoderRerank(
        model=str(tiny_bert), top_n=None, max_context_tokens=budget, tokenizer=str.split
    )
    kept = reranker.postprocess_nodes(make_nodes(), query_str=QUERY)
    assert kept[0].node.node_id == f"n{ranked[0].index}"
    assert sum(n.node.metadata["context_tokens"] for n in kept) <= budget


def test_japanese_duplicates_and_hf_tokenizer(tiny_xlmr: Path) -> None:
    query, texts, relevant = JA_RANKING_CASES[0]
    half_width = texts[relevant].translate({ord("。"): "｡", ord("、"): "､"})
    reranker = CrossEncoderRerank(
        model=str(tiny_xlmr),
        top_n=None,
        deduplicate=True,
        tokenizer=str(tiny_xlmr),
        metadata_mode=MetadataMode.NONE,
    )
    kept = reranker.postprocess_nodes(make_nodes([*texts, half_width]), query_str=query)
    assert kept[0].node.node_id == f"n{relevant}"
    assert kept[0].node.metadata["duplicates_merged"] == 1
    scorer = get_scorer(str(tiny_xlmr))
    assert [n.node.metadata["context_tokens"] for n in kept] == [
        scorer.count_text_tokens(llm_text(n)) for n in kept
    ]


def test_events_and_callback_payload_carry_the_report(tiny_bert: Path) -> None:
    events = Events()
    dispatcher = get_dispatcher("root")
    dispatcher.add_event_handler(events)
    ends = Ends()
    try:
        reranker = CrossEncoderRerank(
            model=str(tiny_bert),
            top_n=2,
            deduplicate=True,
            order="long_context",
            callback_manager=CallbackManager([ends]),
        )
        nodes = [*make_nodes(), make_nodes()[1]]
        kept = reranker.postprocess_nodes(nodes, query_str=QUERY)
    finally:
        dispatcher.event_handlers.remove(events)
    names = [e.class_name() for e in events.events]
    assert names.index("ReRankEndEvent") < names.index("RerankContextEvent")
    report = next(e for e in events.events if isinstance(e, RerankContextEvent)).report
    assert report["documents"] == len(nodes)
    assert report["duplicates"] == 1
    assert report["kept"] == len(kept) == 2
    assert report["over_top_n"] == len(TEXTS) - 2
    assert [p["context_report"] for p in ends.payloads] == [report]


def test_no_report_without_context_options(tiny_bert: Path) -> None:
    ends = Ends()
    reranker = CrossEncoderRerank(model=str(tiny_bert), callback_manager=CallbackManager([ends]))
    reranker.postprocess_nodes(make_nodes(), query_str=QUERY)
    assert "context_report" not in ends.payloads[0]


def test_async_equals_sync(tiny_bert: Path) -> None:
    reranker = CrossEncoderRerank(
        model=str(tiny_bert), top_n=None, max_context_tokens=50, deduplicate=True
    )
    nodes = [*make_nodes(), make_nodes()[3]]
    sync = reranker.postprocess_nodes(nodes, query_str=QUERY)
    asynchronous = asyncio.run(reranker.apostprocess_nodes(nodes, query_str=QUERY))
    assert [(n.node.node_id, n.score, n.node.metadata) for n in sync] == [
        (n.node.node_id, n.score, n.node.metadata) for n in asynchronous
    ]
