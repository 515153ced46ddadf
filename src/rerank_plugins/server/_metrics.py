"""Prometheus metrics of one app: a registry per app, filled by a small ASGI middleware.

A registry per app (not prometheus-client's global one) lets tests and embedders create
several apps in one process without "Duplicated timeseries" errors.

Exported series (all prefixed ``rerank_plugins_``):

* ``http_requests_total{endpoint, method, status}``: requests answered.
* ``http_request_duration_seconds{endpoint}``: latency histogram.
* ``http_requests_in_progress``: requests being handled now.
* ``documents_per_request``: histogram of documents per rerank request.
* ``pairs_scored_total``: (query, document) pairs scored; ``rate()`` of it is pairs/s.
* ``tokens_total``: tokens the model saw (the ``usage`` reported to clients).
* ``model_loaded{model}``: 1 once the model is loaded, else 0.
* ``queue_requests``, ``queue_pairs``: requests and (query, document) pairs waiting in the
  scorer's queue (not yet running), read at scrape time.
* ``scorer_pairs_per_second``: the scorer's measured scoring rate (moving average).

The last three are NaN while no model is loaded, before the first batch (the rate), and for
scorers that do not report their queue (see :class:`QueueStats`).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from rerank_plugins._optional import require

if TYPE_CHECKING:
    from collections.abc import Callable, Collection

    from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["CONTENT_TYPE", "MetricsMiddleware", "QueueStats", "ServerMetrics"]

_prometheus = require(
    "prometheus_client",
    extra="server",
    feature="The HTTP server's /metrics endpoint",
    package="prometheus-client",
)

CONTENT_TYPE: str = _prometheus.CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_DOCUMENT_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)
_OTHER_ENDPOINT = "other"


@runtime_checkable
class QueueStats(Protocol):
    """What a scorer reports about its queue (``CrossEncoderScorer`` does).

    The server bounds waiting work with it (``max_queue_seconds``, deadlines) and exports
    it in ``/metrics``; a scorer without these properties is served without either.
    """

    @property
    def pending_requests(self) -> int:
        """Calls waiting in the queue, not yet running."""
        ...

    @property
    def pending_pairs(self) -> int:
        """(query, passage) pairs waiting in the queue, not yet running."""
        ...

    @property
    def pairs_per_second(self) -> float | None:
        """The measured scoring rate; ``None`` before the first batch."""
        ...


class ServerMetrics:
    """The collectors of one app, in their own ``CollectorRegistry``."""

    def __init__(self) -> None:
        self.registry = _prometheus.CollectorRegistry(auto_describe=True)
        self.requests = _prometheus.Counter(
            "rerank_plugins_http_requests",
            "HTTP requests answered, by endpoint, method and status code.",
            ["endpoint", "method", "status"],
            registry=self.registry,
        )
        self.latency = _prometheus.Histogram(
            "rerank_plugins_http_request_duration_seconds",
            "Time from receiving a request to the end of its response, by endpoint.",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_progress = _prometheus.Gauge(
            "rerank_plugins_http_requests_in_progress",
            "HTTP requests being handled now.",
            registry=self.registry,
        )
        self.documents = _prometheus.Histogram(
            "rerank_plugins_documents_per_request",
            "Documents per rerank request.",
            buckets=_DOCUMENT_BUCKETS,
            registry=self.registry,
        )
        self.pairs = _prometheus.Counter(
            "rerank_plugins_pairs_scored",
            "(query, document) pairs scored; rate() of it is pairs per second.",
            registry=self.registry,
        )
        self.tokens = _prometheus.Counter(
            "rerank_plugins_tokens",
            "Tokens the model saw, as reported in responses' usage.",
            registry=self.registry,
        )
        self.model_loaded = _prometheus.Gauge(
            "rerank_plugins_model_loaded",
            "1 once the model is loaded and the server answers rerank requests, else 0.",
            ["model"],
            registry=self.registry,
        )

        self.queue_requests = _prometheus.Gauge(
            "rerank_plugins_queue_requests",
            "Rerank requests waiting in the scorer's queue, not yet running.",
            registry=self.registry,
        )
        self.queue_pairs = _prometheus.Gauge(
            "rerank_plugins_queue_pairs",
            "(query, document) pairs waiting in the scorer's queue, not yet running.",
            registry=self.registry,
        )
        self.pairs_per_second = _prometheus.Gauge(
            "rerank_plugins_scorer_pairs_per_second",
            "The scorer's measured scoring rate in pairs per second (moving average).",
            registry=self.registry,
        )

    def track_queue(self, stats: Callable[[], QueueStats | None]) -> None:
        """Read the queue gauges from ``stats()`` (the served scorer, if it reports) on scrape."""

        def reader(read: Callable[[QueueStats], float | None]) -> Callable[[], float]:
            def value() -> float:
                source = stats()
                number = None if source is None else read(source)
                return math.nan if number is None else float(number)

            return value

        self.queue_requests.set_function(reader(lambda s: s.pending_requests))
        self.queue_pairs.set_function(reader(lambda s: s.pending_pairs))
        self.pairs_per_second.set_function(reader(lambda s: s.pairs_per_second))

    def observe_rerank(self, *, documents: int, tokens: int) -> None:
        """Record one successful rerank request."""
        self.documents.observe(documents)
        self.pairs.inc(documents)
        self.tokens.inc(tokens)

    def render(self) -> bytes:
        """The registry in Prometheus' text exposition format."""
        return bytes(_prometheus.generate_latest(self.registry))


class MetricsMiddleware:
    """Pure ASGI middleware counting requests and timing them, by endpoint.

    Unknown paths share the ``other`` label so that scanners cannot grow the label set.
    """

    def __init__(self, app: ASGIApp, *, metrics: ServerMetrics, endpoints: Collection[str]):
        self.app = app
        self.metrics = metrics
        self.endpoints = frozenset(endpoints)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call, recording HTTP requests."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = path if path in self.endpoints else _OTHER_ENDPOINT
        status = 500  # what the client gets when the app raises before answering

        async def send_and_record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        start = time.perf_counter()
        self.metrics.in_progress.inc()
        try:
            await self.app(scope, receive, send_and_record_status)
        finally:
            self.metrics.in_progress.dec()
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
            self.metrics.requests.labels(endpoint, scope["method"], str(status)).inc()
