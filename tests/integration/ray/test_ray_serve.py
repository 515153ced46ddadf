"""The Ray Serve deployment on a local single-node Ray: 2 CPU replicas of the tiny BERT.

Results through RemoteScorer must equal the local scorer's. Ray is started once for the
module (a few seconds) and shut down afterwards; the whole module stays well under a minute.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest

ray = pytest.importorskip("ray")
serve = pytest.importorskip("ray.serve")
httpx = pytest.importorskip("httpx")

from rerank_plugins import RemoteScorer, get_scorer  # noqa: E402
from rerank_plugins.ray_serve import app as app_builder  # noqa: E402
from rerank_plugins.ray_serve import build_app  # noqa: E402

pytestmark = pytest.mark.integration

APP_NAME = "rerank-test"
QUERY = "How long does a cat sleep each day?"
PASSAGES = [
    "The high-speed train reaches 300 km/h between the two cities.",
    "Cats sleep for twelve to sixteen hours a day, mostly during daylight.",
    "A cat purrs when it is content, and sometimes when it is hurt.",
    "Tokyo is the capital of Japan.",
    "Kittens sleep even more than adult cats do.",
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def ray_url(tiny_bert: Any) -> Iterator[str]:
    """Base URL of the rerank app on Ray Serve: 2 replicas on CPU, loopback only."""
    saved = {key: os.environ.get(key) for key in ("RAY_USAGE_STATS_ENABLED",)}
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"  # no usage reports: loopback only
    port = _free_port()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        application = build_app(
            str(tiny_bert),
            num_replicas=2,
            num_gpus=0,
            num_cpus=0.5,
            max_batch_size=8,
            batch_wait_timeout_s=0.02,
        )
        serve.run(application, name=APP_NAME, route_prefix="/")
        yield f"http://127.0.0.1:{port}"
    finally:
        serve.shutdown()
        ray.shutdown()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def local(tiny_bert: Any) -> Any:
    return get_scorer(str(tiny_bert), device="cpu")


def test_two_replicas_run_on_cpu(ray_url: str) -> None:
    status = serve.status().applications[APP_NAME]
    deployment = status.deployments["RerankPlugins"]
    assert deployment.replica_states == {"RUNNING": 2}


def test_remote_scores_equal_the_local_scorer(ray_url: str, local: Any) -> None:
    with RemoteScorer(ray_url) as remote:
        scores = remote.score(QUERY, PASSAGES)
        ranked = remote.rank(QUERY, PASSAGES, top_n=3)
    assert scores == pytest.approx(local.score(QUERY, PASSAGES), abs=1e-5)
    expected = local.rank(QUERY, PASSAGES, top_n=3)
    assert [r.index for r in ranked] == [r.index for r in expected]


@pytest.mark.parametrize("protocol", ["cohere", "tei"])
def test_other_wire_formats_are_served_too(ray_url: str, local: Any, protocol: Any) -> None:
    with RemoteScorer(ray_url, protocol=protocol, model="any") as remote:
        assert remote.score(QUERY, PASSAGES) == pytest.approx(
            local.score(QUERY, PASSAGES), abs=1e-5
        )


async def test_concurrent_requests_are_batched_and_each_gets_its_own_answer(
    ray_url: str, local: Any
) -> None:
    """16 concurrent requests, one of them bad: the bad one fails alone (422)."""
    queries = [f"{QUERY} ({i})" for i in range(15)]
    async with RemoteScorer(ray_url) as remote, httpx.AsyncClient() as client:
        bad = client.post(f"{ray_url}/v1/rerank", json={"query": "   ", "documents": ["a"]})
        results = await asyncio.gather(bad, *(remote.ascore(q, PASSAGES) for q in queries))
    bad_response, scores = results[0], results[1:]
    assert bad_response.status_code == 422
    assert bad_response.json()["error"]["message"] == (
        "Invalid request body: query: String should contain a character that is not "
        "whitespace (got '   ')."
    )
    for query, got in zip(queries, scores, strict=True):
        assert got == pytest.approx(local.score(query, PASSAGES), abs=1e-5)


def test_langchain_adapter_reaches_ray_through_remote_scorer(ray_url: str, local: Any) -> None:
    from langchain_core.documents import Document

    from rerank_plugins.langchain import CrossEncoderRerank

    docs = [Document(page_content=text) for text in PASSAGES]
    with RemoteScorer(ray_url) as remote:
        got = CrossEncoderRerank(scorer=remote, top_n=2).compress_documents(docs, QUERY)
    expected = local.rank(QUERY, PASSAGES, top_n=2)
    assert [d.page_content for d in got] == [r.text for r in expected]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ({}, r"rerank_plugins\.ray_serve:app needs model=<hub id or path>"),
        ({"model": "m", "replicas": "2"}, r"Unknown argument\(s\) \['replicas'\]"),
        ({"model": "m", "num_replicas": "two"}, r"num_replicas must be an int, got 'two'\."),
        ({"model": "m", "local_files_only": "maybe"}, r"local_files_only must be true or false"),
        (
            {"model": "m", "num_replicas": "2", "max_replicas": "4"},
            r"Pass num_replicas=2 or autoscaling_config, not both",
        ),
        ({"model": "m", "max_batch_size": "0"}, r"max_batch_size must be a positive int, got 0\."),
    ],
    ids=["no-model", "unknown", "bad-int", "bad-bool", "replicas-and-autoscaling", "batch-0"],
)
def test_cli_builder_rejects_bad_arguments(args: dict[str, str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        app_builder(args)


def test_cli_builder_parses_strings_into_deployment_options() -> None:
    application = app_builder(
        {
            "model": "BAAI/bge-reranker-base",
            "num_gpus": "0",
            "min_replicas": "1",
            "max_replicas": "4",
            "target_ongoing_requests": "8",
            "max_batch_size": "32",
            "dtype": "float32",
            "local_files_only": "true",
        }
    )
    deployment = application._bound_deployment  # Ray has no public accessor for it
    autoscaling = deployment._deployment_config.autoscaling_config
    assert deployment.name == "RerankPlugins"
    assert (autoscaling.min_replicas, autoscaling.max_replicas) == (1, 4)
    assert autoscaling.target_ongoing_requests == 8
    assert deployment.user_config == {"max_batch_size": 32, "batch_wait_timeout_s": 0.005}
    assert deployment.ray_actor_options["num_gpus"] == 0
    model, scorer_options, _ = deployment.init_args
    assert model == "BAAI/bge-reranker-base"
    assert scorer_options == {"dtype": "float32", "local_files_only": True, "device": "cpu"}
