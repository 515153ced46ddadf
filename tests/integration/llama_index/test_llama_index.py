"""The LlamaIndex adapter inside real LlamaIndex objects."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

import pytest
from llama_index.core import Settings, VectorStoreIndex
from llama_index.core.bridge.pydantic import Field
from llama_index.core.callbacks import CallbackManager, CBEventType
from llama_index.core.callbacks.base_handler import BaseCallbackHandler
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.llms import MockLLM
from llama_index.core.schema import ImageNode, MetadataMode, NodeWithScore, QueryBundle, TextNode

from rerank_plugins import get_scorer
from rerank_plugins.langchain import CrossEncoderRerank as LangChainRerank
from rerank_plugins.llama_index import CrossEncoderRerank
from tests._tiny_models import RANKING_CASES

pytestmark = pytest.mark.integration

QUERY, TEXTS, RELEVANT = RANKING_CASES[0]


def make_nodes() -> list[NodeWithScore]:
    return [
        NodeWithScore(node=TextNode(text=t, id_=f"n{i}", metadata={"source": f"doc{i}"}), score=i)
        for i, t in enumerate(TEXTS)
    ]


class EventCollector(BaseEventHandler):
    events: list[str] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "EventCollector"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        self.events.append(event.class_name())


class CallbackCollector(BaseCallbackHandler):
    def __init__(self) -> None:
        super().__init__([], [])
        self.ends: list[tuple[CBEventType, Any]] = []

    def on_event_start(self, event_type: CBEventType, payload: Any = None, **kw: Any) -> str:
        return kw.get("event_id", "")

    def on_event_end(self, event_type: CBEventType, payload: Any = None, **kw: Any) -> None:
        self.ends.append((event_type, payload))

    def start_trace(self, trace_id: str | None = None) -> None:
        pass

    def end_trace(self, trace_id: str | None = None, trace_map: Any = None) -> None:
        pass


def test_postprocess_returns_new_nodes_best_first(tiny_bert: Path) -> None:
    nodes = make_nodes()
    before = copy.deepcopy(nodes)
    reranker = CrossEncoderRerank(model=str(tiny_bert), top_n=None, metadata_mode=MetadataMode.NONE)
    result = reranker.postprocess_nodes(nodes, query_str=QUERY)
    expected = get_scorer(str(tiny_bert)).rank(QUERY, TEXTS)
    assert [n.node.get_content() for n in result] == [r.text for r in expected]
    assert [n.score for n in result] == [r.score for r in expected]
    assert [n.node.metadata["retrieval_score"] for n in result] == [r.index for r in expected]
    assert result[0].node.node_id == f"n{RELEVANT}"
    assert [n.model_dump() for n in nodes] == [n.model_dump() for n in before]


@pytest.mark.parametrize("top_n", [None, 1], ids=["all", "top_n-1"])
@pytest.mark.parametrize("asynchronous", [False, True], ids=["sync", "async"])
def test_nodes_without_text_follow_the_ranked_nodes_unscored(
    tiny_bert: Path, top_n: int | None, asynchronous: bool
) -> None:
    """Regression: an ImageNode (or an empty chunk) was scored as "" and could outrank text."""
    image = NodeWithScore(
        node=ImageNode(image="aGVsbG8=", id_="img", metadata={"source": "figure 1"}), score=0.9
    )
    empty = NodeWithScore(node=TextNode(text="  ", id_="empty"), score=0.8)
    nodes = [image, *make_nodes()[:2], empty, *make_nodes()[2:]]
    reranker = CrossEncoderRerank(model=str(tiny_bert), top_n=top_n)
    if asynchronous:
        result = asyncio.run(reranker.apostprocess_nodes(nodes, query_str=QUERY))
    else:
        result = reranker.postprocess_nodes(nodes, query_str=QUERY)
    text_only = reranker.postprocess_nodes(make_nodes(), query_str=QUERY)
    assert [(n.node.node_id, n.score) for n in result] == [
        *((n.node.node_id, n.score) for n in text_only),
        ("img", None),
        ("empty", None),
    ]
    assert [n.node.metadata["retrieval_score"] for n in result[-2:]] == [0.9, 0.8]
    assert result[-2].node is not image.node


def test_only_nodes_without_text_are_returned_without_scoring(
    tiny_bert: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reranker = CrossEncoderRerank(model=str(tiny_bert))

    def fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("nothing to score: the model must not be called")

    monkeypatch.setattr(reranker.scorer, "_forward", fail)
    nodes = [NodeWithScore(node=ImageNode(image="aGVsbG8=", id_="img"), score=0.5)]
    result = reranker.postprocess_nodes(nodes, query_str=QUERY)
    assert [(n.node.node_id, n.score) for n in result] == [("img", None)]


def test_scores_embed_metadata_by_default(tiny_bert: Path) -> None:
    nodes = make_nodes()
    result = CrossEncoderRerank(model=str(tiny_bert), top_n=None).postprocess_nodes(
        nodes, query_str=QUERY
    )
    texts = [n.node.get_content(metadata_mode=MetadataMode.EMBED) for n in nodes]
    expected = get_scorer(str(tiny_bert)).score(QUERY, texts)
    assert sorted(n.score for n in result) == sorted(expected)  # type: ignore[type-var]


def test_same_scores_as_langchain(tiny_bert: Path) -> None:
    from langchain_core.documents import Document

    ours = CrossEncoderRerank(model=str(tiny_bert), top_n=None, metadata_mode=MetadataMode.NONE)
    lc = LangChainRerank(model=str(tiny_bert), top_n=None)
    nodes = ours.postprocess_nodes(make_nodes(), query_str=QUERY)
    docs = lc.compress_documents([Document(page_content=t) for t in TEXTS], QUERY)
    assert [n.score for n in nodes] == [d.metadata["relevance_score"] for d in docs]
    assert ours.scorer is lc.scorer


def test_async_equals_sync(tiny_bert: Path) -> None:
    reranker = CrossEncoderRerank(model=str(tiny_bert), top_n=2)
    sync = reranker.postprocess_nodes(make_nodes(), query_str=QUERY)
    asynchronous = asyncio.run(reranker.apostprocess_nodes(make_nodes(), query_str=QUERY))
    assert [(n.node.node_id, n.score) for n in sync] == [
        (n.node.node_id, n.score) for n in asynchronous
    ]


def test_events_and_callbacks_are_emitted(tiny_bert: Path) -> None:
    collector = EventCollector()
    dispatcher = get_dispatcher("root")
    dispatcher.add_event_handler(collector)
    callbacks = CallbackCollector()
    try:
        reranker = CrossEncoderRerank(
            model=str(tiny_bert), top_n=2, callback_manager=CallbackManager([callbacks])
        )
        result = reranker.postprocess_nodes(make_nodes(), query_str=QUERY)
    finally:
        dispatcher.event_handlers.remove(collector)
    assert "ReRankStartEvent" in collector.events
    assert "ReRankEndEvent" in collector.events
    assert collector.events.index("ReRankStartEvent") < collector.events.index("ReRankEndEvent")
    reranking = [payload for kind, payload in callbacks.ends if kind == CBEventType.RERANKING]
    assert len(reranking) == 1
    assert [n.node.node_id for n in reranking[0]["nodes"]] == [n.node.node_id for n in result]


def test_missing_query_and_empty_nodes(tiny_bert: Path) -> None:
    reranker = CrossEncoderRerank(model=str(tiny_bert))
    with pytest.raises(ValueError, match="needs a query"):
        reranker.postprocess_nodes(make_nodes())
    assert reranker.postprocess_nodes([], query_bundle=QueryBundle(QUERY)) == []


def test_query_engine_with_reranker(tiny_bert: Path) -> None:
    Settings.llm = MockLLM()
    Settings.embed_model = MockEmbedding(embed_dim=8)
    index = VectorStoreIndex([TextNode(text=t, id_=f"n{i}") for i, t in enumerate(TEXTS)])
    reranker = CrossEncoderRerank(model=str(tiny_bert), top_n=1)
    engine = index.as_query_engine(similarity_top_k=len(TEXTS), node_postprocessors=[reranker])
    response = engine.query(QUERY)
    assert [n.node.node_id for n in response.source_nodes] == [f"n{RELEVANT}"]
    assert response.source_nodes[0].node.metadata["retrieval_score"] is not None


def test_scores_stay_out_of_llm_and_embed_text(tiny_bert: Path) -> None:
    """retrieval_score leaked into the LLM prompt and embed text through node metadata."""
    result = CrossEncoderRerank(model=str(tiny_bert), top_n=1).postprocess_nodes(
        make_nodes(), query_str=QUERY
    )
    node = result[0].node
    assert "retrieval_score" in node.metadata
    assert "retrieval_score" not in node.get_content(metadata_mode=MetadataMode.LLM)
    assert "retrieval_score" not in node.get_content(metadata_mode=MetadataMode.EMBED)
    assert "source" in node.get_content(metadata_mode=MetadataMode.LLM)
