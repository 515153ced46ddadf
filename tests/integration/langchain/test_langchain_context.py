"""The LangChain adapter's context options: budget, duplicates, order and the report."""

from __future__ import annotations

import asyncio
import copy
import logging
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever

from rerank_plugins import get_scorer
from rerank_plugins.langchain import CONTEXT_EVENT, CrossEncoderRerank
from tests._tiny_models import RANKING_CASES

pytestmark = pytest.mark.integration

QUERY, TEXTS, RELEVANT = RANKING_CASES[0]


def make_docs() -> list[Document]:
    return [Document(page_content=t, metadata={"source": f"doc{i}"}) for i, t in enumerate(TEXTS)]


def words(text: str) -> int:
    return len(text.split())


def test_budget_keeps_the_best_documents_that_fit(tiny_bert: Path) -> None:
    ranked = get_scorer(str(tiny_bert)).rank(QUERY, TEXTS)
    budget = words(TEXTS[ranked[0].index]) + words(TEXTS[ranked[2].index])
    reranker = CrossEncoderRerank(
        model=str(tiny_bert), top_n=None, max_context_tokens=budget, length_function=words
    )
    kept = reranker.compress_documents(make_docs(), QUERY)
    assert sum(d.metadata["context_tokens"] for d in kept) <= budget
    assert kept[0].page_content == TEXTS[ranked[0].index]
    assert [d.metadata["context_tokens"] for d in kept] == [words(d.page_content) for d in kept]
    assert [d.metadata["relevance_score"] for d in kept] == sorted(
        (d.metadata["relevance_score"] for d in kept), reverse=True
    )


def test_default_counter_is_the_rerankers_tokenizer(tiny_bert: Path) -> None:
    scorer = get_scorer(str(tiny_bert))
    reranker = CrossEncoderRerank(model=str(tiny_bert), top_n=None, max_context_tokens=10_000)
    kept = reranker.compress_documents(make_docs(), QUERY)
    assert [d.metadata["context_tokens"] for d in kept] == [
        scorer.count_text_tokens(d.page_content) for d in kept
    ]


def test_duplicates_are_merged_into_the_first_copy(tiny_bert: Path) -> None:
    docs = [*make_docs(), Document(page_content=TEXTS[1].upper(), metadata={"source": "copy"})]
    before = copy.deepcopy(docs)
    reranker = CrossEncoderRerank(model=str(tiny_bert), top_n=None, deduplicate=True)
    kept = reranker.compress_documents(docs, QUERY)
    assert len(kept) == len(TEXTS)
    merged = [d for d in kept if "duplicates_merged" in d.metadata]
    assert [(d.metadata["source"], d.metadata["duplicates_merged"]) for d in merged] == [
        ("doc1", 1)
    ]
    assert docs == before, "the caller's documents must not be mutated"


def test_long_context_order(tiny_bert: Path) -> None:
    relevance = CrossEncoderRerank(model=str(tiny_bert), top_n=None).compress_documents(
        make_docs(), QUERY
    )
    reranker = CrossEncoderRerank(model=str(tiny_bert), top_n=None, order="long_context")
    layout = reranker.compress_documents(make_docs(), QUERY)
    assert [d.page_content for d in layout] == [relevance[i].page_content for i in (0, 2, 3, 1)]
    assert layout[0].metadata["relevance_score"] == relevance[0].metadata["relevance_score"]


def test_async_equals_sync(tiny_bert: Path) -> None:
    reranker = CrossEncoderRerank(
        model=str(tiny_bert), top_n=3, max_context_tokens=30, deduplicate=True, order="long_context"
    )
    docs = [*make_docs(), make_docs()[2]]
    sync = reranker.compress_documents(docs, QUERY)
    assert sync == asyncio.run(reranker.acompress_documents(docs, QUERY))


class ListRetriever(BaseRetriever):
    documents: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: object) -> list[Document]:
        return self.documents


class CustomEvents(BaseCallbackHandler):
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        self.events.append((name, data))


def test_report_reaches_callbacks_and_the_log(
    tiny_bert: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever

    docs = [*make_docs(), make_docs()[0]]
    retriever = ContextualCompressionRetriever(
        base_compressor=CrossEncoderRerank(
            model=str(tiny_bert), top_n=None, max_context_tokens=12, deduplicate=True
        ),
        base_retriever=ListRetriever(documents=docs),
    )
    handler = CustomEvents()
    with caplog.at_level(logging.INFO, logger="rerank_plugins.context"):
        kept = retriever.invoke(QUERY, config={"callbacks": [handler]})
    assert len(handler.events) == 1
    name, report = handler.events[0]
    assert name == CONTEXT_EVENT
    assert report["documents"] == len(docs)
    assert report["duplicates"] == 1
    assert report["kept"] == len(kept)
    assert report["tokens"] == sum(d.metadata["context_tokens"] for d in kept) <= 12
    assert report["kept"] + report["over_budget"] + report["duplicates"] == len(docs)
    assert [r.getMessage()[:40] for r in caplog.records] == [
        f"Context: kept {len(kept)} of 5 documents, {report['tokens']} of 12 tokens"[:40]
    ]


def test_without_a_run_no_event_is_sent(tiny_bert: Path) -> None:
    reranker = CrossEncoderRerank(model=str(tiny_bert), max_context_tokens=50)
    assert reranker.compress_documents(make_docs(), QUERY, callbacks=[CustomEvents()])


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"max_context_tokens": 0}, ValueError, "max_context_tokens must be a positive int"),
        ({"order": "middle"}, ValueError, "Input should be 'relevance' or 'long_context'"),
        ({"length_function": "no/such-tokenizer"}, ValueError, "length_function='no/such"),
    ],
    ids=["zero-budget", "order", "unknown-tokenizer"],
)
def test_bad_options_fail_at_construction(
    tiny_bert: Path, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        CrossEncoderRerank(model=str(tiny_bert), **kwargs)
