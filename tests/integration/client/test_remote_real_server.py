"""RemoteScorer against our real server (create_app on the tiny BERT) over loopback HTTP.

Remote scores must equal the local scorer's, for every protocol our server speaks and
through both framework adapters.
"""

from __future__ import annotations

from typing import Any

import pytest

from rerank_plugins import RemoteRerankError, RemoteScorer

pytestmark = pytest.mark.integration

QUERY = "How long does a cat sleep each day?"
PASSAGES = [
    "The high-speed train reaches 300 km/h between the two cities.",
    "Cats sleep for twelve to sixteen hours a day, mostly during daylight.",
    "A cat purrs when it is content, and sometimes when it is hurt.",
    "Tokyo is the capital of Japan.",
    "Kittens sleep even more than adult cats do.",
    "Bananas are rich in potassium.",
    "Some cats nap in short bursts through the night.",
]


def _pairs(results: list[Any]) -> list[tuple[int, float]]:
    return [(r.index, r.score) for r in results]


def _assert_same(got: list[Any], expected: list[Any]) -> None:
    assert [r.index for r in got] == [r.index for r in expected]
    assert [r.score for r in got] == pytest.approx([r.score for r in expected], abs=1e-6)
    assert [r.text for r in got] == [r.text for r in expected]


def test_scores_equal_the_local_scorer(real_server: str, api_key: str, local_scorer: Any) -> None:
    with RemoteScorer(real_server, api_key=api_key) as remote:
        got = remote.score(QUERY, PASSAGES)
    assert got == pytest.approx(local_scorer.score(QUERY, PASSAGES), abs=1e-6)
    assert len(set(got)) > 1, "scores should differ between passages"


async def test_async_scores_and_ranking_equal_the_local_scorer(
    real_server: str, api_key: str, local_scorer: Any
) -> None:
    async with RemoteScorer(real_server, api_key=api_key) as remote:
        scores = await remote.ascore(QUERY, PASSAGES)
        ranked = await remote.arank(QUERY, PASSAGES, top_n=3)
    assert scores == pytest.approx(local_scorer.score(QUERY, PASSAGES), abs=1e-6)
    _assert_same(ranked, local_scorer.rank(QUERY, PASSAGES, top_n=3))


@pytest.mark.parametrize("protocol", ["auto", "cohere", "jina", "vllm", "tei", "infinity"])
def test_every_protocol_our_server_speaks_gives_the_local_ranking(
    real_server: str, api_key: str, local_scorer: Any, protocol: Any
) -> None:
    with RemoteScorer(real_server, api_key=api_key, protocol=protocol) as remote:
        _assert_same(remote.rank(QUERY, PASSAGES), local_scorer.rank(QUERY, PASSAGES))


@pytest.mark.parametrize(
    ("top_n", "count"),
    [(1, 1), (len(PASSAGES), len(PASSAGES)), (len(PASSAGES) + 1, len(PASSAGES)), (None, 7)],
    ids=["top_n-1", "top_n-len", "top_n-len+1", "top_n-none"],
)
def test_top_n_grid_matches_local(
    real_server: str, api_key: str, local_scorer: Any, top_n: int | None, count: int
) -> None:
    with RemoteScorer(real_server, api_key=api_key) as remote:
        got = remote.rank(QUERY, PASSAGES, top_n=top_n)
    assert len(got) == count
    _assert_same(got, local_scorer.rank(QUERY, PASSAGES, top_n=top_n))


def test_score_threshold_matches_local(real_server: str, api_key: str, local_scorer: Any) -> None:
    threshold = sorted(local_scorer.score(QUERY, PASSAGES), reverse=True)[2]
    with RemoteScorer(real_server, api_key=api_key) as remote:
        got = remote.rank(QUERY, PASSAGES, score_threshold=threshold)
    expected = local_scorer.rank(QUERY, PASSAGES, score_threshold=threshold)
    assert len(got) == 3
    _assert_same(got, expected)


def test_split_requests_merge_with_index_offsets(
    serve: Any, local_scorer: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """A server limited to 3 documents: the 413 teaches the limit, results are merged."""
    from rerank_plugins.server.app import create_app

    with serve(create_app(local_scorer, max_documents=3)) as url, RemoteScorer(url) as remote:
        scores = remote.score(QUERY, PASSAGES)
        ranked = remote.rank(QUERY, PASSAGES, top_n=4)
    assert scores == pytest.approx(local_scorer.score(QUERY, PASSAGES), abs=1e-6)
    _assert_same(ranked, local_scorer.rank(QUERY, PASSAGES, top_n=4))
    assert "sending at most 3 per request" in caplog.text


async def test_async_split_requests_merge_with_index_offsets(serve: Any, local_scorer: Any) -> None:
    from rerank_plugins.server.app import create_app

    with serve(create_app(local_scorer, max_documents=2)) as url:
        async with RemoteScorer(url) as remote:
            scores = await remote.ascore(QUERY, PASSAGES)
    assert scores == pytest.approx(local_scorer.score(QUERY, PASSAGES), abs=1e-6)


def test_a_too_long_document_is_a_clear_error_not_a_split(serve: Any, local_scorer: Any) -> None:
    from rerank_plugins.server.app import create_app

    passages = ["short", "x" * 50, "also short"]
    with (
        serve(create_app(local_scorer, max_document_chars=20)) as url,
        RemoteScorer(url) as remote,
        pytest.raises(RemoteRerankError, match=r"answered 413 .*Document 1 has 50 char") as err,
    ):
        remote.score(QUERY[:20], passages)
    assert err.value.status_code == 413
    assert "too long for the server" in str(err.value)


def test_wrong_api_key_is_a_401_error(real_server: str) -> None:
    with (
        RemoteScorer(real_server, api_key="wrong", max_retries=3) as remote,
        pytest.raises(RemoteRerankError, match="The server rejected api_key") as err,
    ):
        remote.score(QUERY, PASSAGES)
    assert err.value.status_code == 401
    assert "Invalid API key" in err.value.body


# --- adapters --------------------------------------------------------------------------------


def _nodes() -> list[Any]:
    from llama_index.core.schema import NodeWithScore, TextNode

    return [
        NodeWithScore(node=TextNode(text=text, id_=f"n{i}"), score=0.5)
        for i, text in enumerate(PASSAGES)
    ]


def test_langchain_adapter_with_remote_scorer_matches_local(
    real_server: str, api_key: str, tiny_bert: Any
) -> None:
    from langchain_core.documents import Document

    from rerank_plugins.langchain import CrossEncoderRerank

    docs = [Document(page_content=t, metadata={"i": i}) for i, t in enumerate(PASSAGES)]
    local = CrossEncoderRerank(model=str(tiny_bert), top_n=4).compress_documents(docs, QUERY)
    with RemoteScorer(real_server, api_key=api_key) as remote:
        reranker = CrossEncoderRerank(scorer=remote, top_n=4)
        got = reranker.compress_documents(docs, QUERY)
    assert reranker.model == real_server
    assert [d.metadata["i"] for d in got] == [d.metadata["i"] for d in local]
    assert [d.metadata["relevance_score"] for d in got] == pytest.approx(
        [d.metadata["relevance_score"] for d in local], abs=1e-6
    )


async def test_langchain_adapter_async_with_remote_scorer_matches_local(
    real_server: str, api_key: str, tiny_bert: Any
) -> None:
    from langchain_core.documents import Document

    from rerank_plugins.langchain import CrossEncoderRerank

    docs = [Document(page_content=t) for t in PASSAGES]
    local = await CrossEncoderRerank(model=str(tiny_bert), top_n=3).acompress_documents(docs, QUERY)
    async with RemoteScorer(real_server, api_key=api_key) as remote:
        got = await CrossEncoderRerank(scorer=remote, top_n=3).acompress_documents(docs, QUERY)
    assert [d.page_content for d in got] == [d.page_content for d in local]
    assert [d.metadata["relevance_score"] for d in got] == pytest.approx(
        [d.metadata["relevance_score"] for d in local], abs=1e-6
    )


def test_llama_index_adapter_with_remote_scorer_matches_local(
    real_server: str, api_key: str, tiny_bert: Any
) -> None:
    from llama_index.core.schema import QueryBundle

    from rerank_plugins.llama_index import CrossEncoderRerank

    nodes = _nodes()
    bundle = QueryBundle(query_str=QUERY)
    local = CrossEncoderRerank(model=str(tiny_bert), top_n=3).postprocess_nodes(nodes, bundle)
    with RemoteScorer(real_server, api_key=api_key, model="tiny") as remote:
        reranker = CrossEncoderRerank(scorer=remote, top_n=3)
        got = reranker.postprocess_nodes(nodes, bundle)
    assert reranker.model == "tiny"
    assert [n.node.node_id for n in got] == [n.node.node_id for n in local]
    assert [n.score for n in got] == pytest.approx([n.score for n in local], abs=1e-6)


async def test_llama_index_adapter_async_with_remote_scorer_matches_local(
    real_server: str, api_key: str, tiny_bert: Any
) -> None:
    from llama_index.core.schema import QueryBundle

    from rerank_plugins.llama_index import CrossEncoderRerank

    nodes = _nodes()
    bundle = QueryBundle(query_str=QUERY)
    local = await CrossEncoderRerank(model=str(tiny_bert), top_n=2).apostprocess_nodes(
        nodes, bundle
    )
    async with RemoteScorer(real_server, api_key=api_key) as remote:
        got = await CrossEncoderRerank(scorer=remote, top_n=2).apostprocess_nodes(nodes, bundle)
    assert [n.node.node_id for n in got] == [n.node.node_id for n in local]
    assert [n.score for n in got] == pytest.approx([n.score for n in local], abs=1e-6)
