"""RemoteScorer against fake TEI, vLLM, Jina, Infinity and Cohere servers on loopback.

The fakes check the request bodies as the real services' schemas do and answer in their
response shapes; the tests check what was sent, where, how often, and that scores come
back in input order.
"""

from __future__ import annotations

from typing import Any

import pytest

from rerank_plugins import RemoteRerankError, RemoteScorer

pytestmark = pytest.mark.integration

QUERY = "where do cats sleep"
PASSAGES = [
    "dogs sleep in kennels",
    "cats sleep on warm windowsills where the sun shines",
    "trains run on rails",
    "cats and kittens sleep a lot",
    "where is the station",
]


def _expected(fakes: Any) -> list[float]:
    return [fakes.score(QUERY, p) for p in PASSAGES]


def test_tei_is_detected_by_auto_and_then_called_directly(serve: Any, fakes: Any) -> None:
    tei = fakes.tei()
    with serve(tei.app) as url, RemoteScorer(url) as remote:
        first = remote.score(QUERY, PASSAGES)
        second = remote.rank(QUERY, PASSAGES, top_n=2)
    assert first == _expected(fakes)
    assert [r.index for r in second] == [1, 3]
    # /v1/rerank is a 404 on TEI; then /rerank with TEI's body; the next call goes straight there.
    assert tei.paths() == ["/v1/rerank", "/rerank", "/rerank"]
    assert tei.seen[1].body == {
        "query": QUERY,
        "texts": PASSAGES,
        "truncate": True,
        "raw_scores": False,
        "return_text": False,
    }


async def test_tei_protocol_sends_one_request(serve: Any, fakes: Any) -> None:
    tei = fakes.tei()
    with serve(tei.app) as url:
        async with RemoteScorer(url, protocol="tei", model="ignored-by-tei") as remote:
            assert await remote.ascore(QUERY, PASSAGES) == _expected(fakes)
    assert tei.paths() == ["/rerank"]
    assert "model" not in tei.seen[0].body


@pytest.mark.parametrize("suffix", ["", "/v1", "/v1/"])
def test_vllm_base_url_with_or_without_v1(serve: Any, fakes: Any, suffix: str) -> None:
    """vLLM users often pass the OpenAI-style base URL ``http://host:8000/v1``."""
    vllm = fakes.vllm()
    with serve(vllm.app) as url, RemoteScorer(url + suffix, protocol="vllm", model="bge") as remote:
        assert remote.score(QUERY, PASSAGES) == _expected(fakes)
    assert vllm.paths() == ["/v1/rerank"]
    # vLLM logs a warning for fields it does not know, so none are sent (and no top_n).
    assert vllm.seen[0].body == {"query": QUERY, "documents": PASSAGES, "model": "bge"}


def test_vllm_is_detected_by_auto_at_v1_rerank(serve: Any, fakes: Any) -> None:
    vllm = fakes.vllm()
    with serve(vllm.app) as url, RemoteScorer(url) as remote:
        assert remote.score(QUERY, PASSAGES) == _expected(fakes)
    assert vllm.paths() == ["/v1/rerank"]


def test_jina_sends_model_key_and_no_documents_back(serve: Any, fakes: Any) -> None:
    jina = fakes.jina(api_key="jina_abc")
    with (
        serve(jina.app) as url,
        RemoteScorer(
            url + "/v1",
            protocol="jina",
            model="jina-reranker-v2-base-multilingual",
            api_key="jina_abc",
        ) as remote,
    ):
        assert remote.score(QUERY, PASSAGES) == _expected(fakes)
    seen = jina.seen[0]
    assert seen.path == "/v1/rerank"
    assert seen.headers["authorization"] == "Bearer jina_abc"
    assert seen.headers["user-agent"].startswith("rerank-plugins/")
    assert seen.body == {
        "query": QUERY,
        "documents": PASSAGES,
        "model": "jina-reranker-v2-base-multilingual",
        "return_documents": False,
    }


def test_jina_without_model_is_a_clear_error(serve: Any, fakes: Any) -> None:
    jina = fakes.jina(api_key="k")
    with (
        serve(jina.app) as url,
        RemoteScorer(url, protocol="jina", api_key="k") as remote,
        pytest.raises(
            RemoteRerankError,
            match=r"answered 422 Unprocessable .*model is required.*pass model='...'",
        ) as err,
    ):
        remote.score(QUERY, PASSAGES)
    assert err.value.status_code == 422
    assert len(jina.seen) == 1, "a 422 is not retried"


def test_infinity_without_prefix_is_detected_on_the_third_try(serve: Any, fakes: Any) -> None:
    infinity = fakes.infinity()
    with serve(infinity.app) as url, RemoteScorer(url) as remote:
        assert remote.score(QUERY, PASSAGES) == _expected(fakes)
        assert remote.score(QUERY, PASSAGES[:2]) == _expected(fakes)[:2]
    # 404 at /v1/rerank, 422 for TEI's body at /rerank, then the Cohere shape at /rerank.
    assert infinity.paths() == ["/v1/rerank", "/rerank", "/rerank", "/rerank"]
    assert infinity.seen[2].body == {
        "query": QUERY,
        "documents": PASSAGES,
        "return_documents": False,
        "raw_scores": False,
    }


def test_cohere_v2_request_and_response(serve: Any, fakes: Any) -> None:
    cohere = fakes.cohere()
    with (
        serve(cohere.app) as url,
        RemoteScorer(
            url,
            protocol="cohere",
            model="rerank-v3.5",
            api_key="co-key",
            extra_body={"max_tokens_per_doc": 512},
        ) as remote,
    ):
        ranked = remote.rank(QUERY, PASSAGES, top_n=3)
    expected = _expected(fakes)
    best = sorted(range(len(PASSAGES)), key=lambda i: -expected[i])[:3]
    assert [r.index for r in ranked] == best == [1, 3, 0]
    assert [r.text for r in ranked] == [PASSAGES[i] for i in best]
    assert [r.score for r in ranked] == [expected[i] for i in best]
    assert cohere.paths() == ["/v2/rerank"]
    assert cohere.seen[0].body == {
        "query": QUERY,
        "documents": PASSAGES,
        "model": "rerank-v3.5",
        "max_tokens_per_doc": 512,
    }
    assert cohere.seen[0].headers["authorization"] == "Bearer co-key"


def test_cohere_without_model_shows_coheres_message_and_the_fix(serve: Any, fakes: Any) -> None:
    with (
        serve(fakes.cohere().app) as url,
        RemoteScorer(url, protocol="cohere") as remote,
        pytest.raises(
            RemoteRerankError,
            match=r"answered 400 Bad Request: invalid request: model must be set\. .*"
            r"The cohere API needs a model name: pass model='...'",
        ) as err,
    ):
        remote.score(QUERY, PASSAGES)
    assert err.value.status_code == 400
    assert "model must be set" in err.value.body


def test_auto_on_a_server_without_any_rerank_api(serve: Any) -> None:
    from fastapi import FastAPI

    with (
        serve(FastAPI()) as url,
        RemoteScorer(url) as remote,
        pytest.raises(
            RemoteRerankError,
            match=r"Found no rerank API at 'http://127\.0\.0\.1:\d+'\. Tried: "
            r"POST .*/v1/rerank \(jina body\) -> 404: Not Found; "
            r"POST .*/rerank \(tei body\) -> 404: Not Found; "
            r"POST .*/rerank \(infinity body\) -> 404: Not Found\. "
            r"Check base_url, or pass protocol= explicitly",
        ) as err,
    ):
        remote.score(QUERY, PASSAGES)
    assert err.value.status_code == 404


def test_explicit_protocol_on_the_wrong_server_is_a_404_with_the_fix(
    serve: Any, fakes: Any
) -> None:
    with (
        serve(fakes.tei().app) as url,
        RemoteScorer(url, protocol="cohere", model="m") as remote,
        pytest.raises(
            RemoteRerankError,
            match=r"answered 404 Not Found: Not Found\. Check base_url=.* and "
            r"protocol='cohere', which posts to /v2/rerank\.",
        ),
    ):
        remote.score(QUERY, PASSAGES)


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_shuffled_results_are_mapped_back_by_index(serve: Any, fakes: Any, mode: str) -> None:
    """Regression guard: results must be matched by their index field, never by position."""
    server = fakes.scripted([fakes.shuffled])
    passages = [f"cats sleep {'a' * i}" for i in range(12)]
    expected = [fakes.score(QUERY, p) for p in passages]
    with serve(server.app) as url:
        remote = RemoteScorer(url)
        if mode == "sync":
            scores = remote.score(QUERY, passages)
            ranked = remote.rank(QUERY, passages)
            remote.close()
        else:
            scores = await remote.ascore(QUERY, passages)
            ranked = await remote.arank(QUERY, passages)
            await remote.aclose()
    assert scores == expected
    assert [r.index for r in ranked] == sorted(range(12), key=lambda i: -expected[i])
    assert all(r.text == passages[r.index] for r in ranked)


def test_headers_and_extra_body_are_sent(serve: Any, fakes: Any) -> None:
    vllm = fakes.vllm()
    with (
        serve(vllm.app) as url,
        RemoteScorer(
            url,
            protocol="vllm",
            headers={"X-Tenant": "t1"},
            extra_body={"truncate_prompt_tokens": 512},
        ) as remote,
    ):
        remote.score(QUERY, PASSAGES)
    assert vllm.seen[0].headers["x-tenant"] == "t1"
    assert vllm.seen[0].body == {
        "query": QUERY,
        "documents": PASSAGES,
        "truncate_prompt_tokens": 512,
    }


def test_a_server_that_drops_results_is_an_error(serve: Any, fakes: Any) -> None:
    """A server applying a default top_n would silently lose documents; we refuse that."""
    from fastapi.responses import JSONResponse

    def top_two(documents: list[str], query: str) -> Any:
        results = [{"index": 3, "relevance_score": 0.9}, {"index": 0, "relevance_score": 0.1}]
        return JSONResponse({"results": results})

    with (
        serve(fakes.scripted([top_two]).app) as url,
        RemoteScorer(url) as remote,
        pytest.raises(
            RemoteRerankError,
            match=r"returned 2 results for 5 documents \(missing indices \[1, 2, 4\]\)",
        ),
    ):
        remote.score(QUERY, PASSAGES)


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"results": [{"index": 7, "relevance_score": 1.0}]}, r"does not fit 5 documents"),
        ({"results": [{"index": 0, "relevance_score": "high"}]}, r"numeric 'relevance_score'"),
        ({"answer": 42}, r"without a list of results \(expected the 'jina' response shape\)"),
    ],
    ids=["index-out-of-range", "score-not-a-number", "no-results"],
)
def test_malformed_responses_are_errors(serve: Any, fakes: Any, payload: Any, match: str) -> None:
    from fastapi.responses import JSONResponse

    with (
        serve(fakes.scripted([lambda d, q: JSONResponse(payload)]).app) as url,
        RemoteScorer(url) as remote,
        pytest.raises(RemoteRerankError, match=match) as err,
    ):
        remote.score(QUERY, PASSAGES)
    assert err.value.status_code == 200


def test_a_non_json_answer_is_an_error(serve: Any, fakes: Any) -> None:
    from fastapi.responses import PlainTextResponse

    with (
        serve(fakes.scripted([lambda d, q: PlainTextResponse("<html>proxy</html>")]).app) as url,
        RemoteScorer(url) as remote,
        pytest.raises(
            RemoteRerankError,
            match=r"answered 200 with a body that is not JSON: <html>proxy</html>\. "
            r"Is base_url a rerank server\?",
        ),
    ):
        remote.score(QUERY, PASSAGES)


async def test_async_split_detects_the_api_once_before_sending_the_rest(
    serve: Any, fakes: Any
) -> None:
    tei = fakes.tei()
    with serve(tei.app) as url:
        async with RemoteScorer(url, max_documents_per_request=2) as remote:
            assert await remote.ascore(QUERY, PASSAGES) == _expected(fakes)
    assert tei.paths() == ["/v1/rerank", "/rerank", "/rerank", "/rerank"]
    assert sorted(tei.sizes()) == [1, 2, 2, 2]
