"""The LangChain adapter inside real LangChain objects."""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path

import pytest
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import RunnableLambda

from rerank_plugins import get_scorer
from rerank_plugins.langchain import CrossEncoderRerank
from tests._tiny_models import RANKING_CASES

pytestmark = pytest.mark.integration

QUERY, TEXTS, RELEVANT = RANKING_CASES[0]


class ListRetriever(BaseRetriever):
    """A first stage that returns fixed documents."""

    documents: list[Document]

    def _get_relevant_documents(self, query: str, *, run_manager: object) -> list[Document]:
        return self.documents


def make_docs() -> list[Document]:
    return [Document(page_content=t, metadata={"source": f"doc{i}"}) for i, t in enumerate(TEXTS)]


def test_compress_documents_returns_scored_copies_best_first(tiny_bert: Path) -> None:
    docs = make_docs()
    before = copy.deepcopy(docs)
    reranker = CrossEncoderRerank(model=str(tiny_bert), top_n=None)
    result = reranker.compress_documents(docs, QUERY)
    expected = get_scorer(str(tiny_bert)).rank(QUERY, TEXTS)
    assert [d.page_content for d in result] == [r.text for r in expected]
    assert [d.metadata["relevance_score"] for d in result] == [r.score for r in expected]
    assert result[0].page_content == TEXTS[RELEVANT]
    assert result[0].metadata["source"] == f"doc{RELEVANT}"
    assert docs == before, "the caller's documents must not be mutated"
    assert all(d is not o for d in result for o in docs)


@pytest.mark.parametrize(("top_n", "expected"), [(1, 1), (2, 2), (None, len(TEXTS))])
def test_top_n(tiny_bert: Path, top_n: int | None, expected: int) -> None:
    reranker = CrossEncoderRerank(model=str(tiny_bert), top_n=top_n)
    assert len(reranker.compress_documents(make_docs(), QUERY)) == expected


def test_score_threshold_drops_low_scores(tiny_bert: Path) -> None:
    scores = sorted(get_scorer(str(tiny_bert)).score(QUERY, TEXTS), reverse=True)
    reranker = CrossEncoderRerank(model=str(tiny_bert), top_n=None, score_threshold=scores[1])
    kept = reranker.compress_documents(make_docs(), QUERY)
    assert [d.metadata["relevance_score"] for d in kept] == scores[:2]


def test_async_equals_sync_and_shares_the_scorer(tiny_bert: Path) -> None:
    reranker = CrossEncoderRerank(model=str(tiny_bert), top_n=3)
    assert reranker.scorer is get_scorer(str(tiny_bert))
    sync = reranker.compress_documents(make_docs(), QUERY)
    asynchronous = asyncio.run(reranker.acompress_documents(make_docs(), QUERY))
    assert sync == asynchronous


def test_empty_documents(tiny_bert: Path) -> None:
    reranker = CrossEncoderRerank(model=str(tiny_bert))
    assert reranker.compress_documents([], QUERY) == []


def test_contextual_compression_retriever(tiny_bert: Path) -> None:
    from langchain_classic.retrievers import ContextualCompressionRetriever

    retriever = ContextualCompressionRetriever(
        base_compressor=CrossEncoderRerank(model=str(tiny_bert), top_n=2),
        base_retriever=ListRetriever(documents=make_docs()),
    )
    result = retriever.invoke(QUERY)
    assert len(result) == 2
    assert result[0].page_content == TEXTS[RELEVANT]
    assert asyncio.run(retriever.ainvoke(QUERY)) == result


def test_lcel_chain(tiny_bert: Path) -> None:
    reranker = CrossEncoderRerank(model=str(tiny_bert), top_n=1)
    retriever = ListRetriever(documents=make_docs())
    chain = {"docs": retriever, "query": lambda q: q} | RunnableLambda(
        lambda x: reranker.compress_documents(x["docs"], x["query"])
    )
    assert [d.page_content for d in chain.invoke(QUERY)] == [TEXTS[RELEVANT]]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, ValueError, r"Value error, Pass model='<hub id or local path>'"),
        ({"model": "m", "scorer": object()}, ValueError, r"Value error, Pass either scorer="),
        ({"scorer": object()}, TypeError, r"^scorer must have rank\(\) and arank\(\)"),
        ({"model": "m", "top_n": 0}, ValueError, r"top_n must be a positive int or None, got 0"),
    ],
    ids=["nothing", "both", "not-a-scorer", "top_n-0"],
)
def test_bad_configuration(kwargs: dict, error: type[Exception], message: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(error, match=message):
        CrossEncoderRerank(**kwargs)


def test_bad_query_is_reported(tiny_bert: Path) -> None:
    reranker = CrossEncoderRerank(model=str(tiny_bert))
    with pytest.raises(ValueError, match="query must be a non-empty string"):
        reranker.compress_documents(make_docs(), "")
