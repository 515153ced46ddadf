"""``GET /health`` and ``GET /metrics`` (Prometheus text format)."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.integration

DOCUMENTS = ["Paris is the capital of France.", "Bananas are yellow.", "Berlin is in Germany."]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Parse Prometheus text into {(sample name, sorted labels): value}."""
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_health_is_200_with_the_model(client, scorer):
    response = client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "model": scorer.model}


def test_metrics_count_requests_documents_pairs_and_tokens(client, scorer):
    first = client.post("/v1/rerank", json={"query": "capital", "documents": DOCUMENTS})
    second = client.post("/rerank", json={"query": "France", "texts": DOCUMENTS[:2]})
    bad = client.post("/v2/rerank", json={"query": "capital", "documents": DOCUMENTS, "top_n": 0})
    client.get("/no/such/page")
    assert (first.status_code, second.status_code, bad.status_code) == (200, 200, 422)

    response = client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = _samples(response.text)

    def requests(endpoint: str, method: str, status: str) -> float:
        labels = (("endpoint", endpoint), ("method", method), ("status", status))
        return samples[("rerank_plugins_http_requests_total", labels)]

    assert requests("/v1/rerank", "POST", "200") == 1
    assert requests("/rerank", "POST", "200") == 1
    assert requests("/v2/rerank", "POST", "422") == 1
    assert requests("other", "GET", "404") == 1  # unknown paths share one label
    assert samples[("rerank_plugins_documents_per_request_count", ())] == 2
    assert samples[("rerank_plugins_documents_per_request_sum", ())] == 5
    assert samples[("rerank_plugins_pairs_scored_total", ())] == 5
    tokens = first.json()["usage"]["total_tokens"] + int(second.headers["x-compute-tokens"])
    assert samples[("rerank_plugins_tokens_total", ())] == tokens
    latency = ("rerank_plugins_http_request_duration_seconds_count", (("endpoint", "/v1/rerank"),))
    assert samples[latency] == 1
    assert samples[("rerank_plugins_model_loaded", (("model", scorer.model),))] == 1
    assert samples[("rerank_plugins_http_requests_in_progress", ())] == 1  # this request


def test_each_app_has_its_own_registry(make_client, word_overlap):
    """Two apps in one process must not share counters nor clash on registration."""
    first = make_client(word_overlap)
    second = make_client(word_overlap)

    first.post("/v1/rerank", json={"query": "capital", "documents": DOCUMENTS})

    first_samples = _samples(first.get("/metrics").text)
    second_samples = _samples(second.get("/metrics").text)
    assert first_samples[("rerank_plugins_pairs_scored_total", ())] == 3
    assert second_samples[("rerank_plugins_pairs_scored_total", ())] == 0
