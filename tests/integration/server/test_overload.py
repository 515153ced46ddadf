"""Nobody waits for it: abandoned requests are cancelled, the queue is bounded by work.

Issue 9 item 4. Before, three 300-document requests whose clients had timed out were still
scored in full and a 2-document request sent after them waited ~54 s; ``max_queue`` counted
requests, so 429 practically never came; and a client that had given up was still served.
"""

from __future__ import annotations

import asyncio
import logging
import math
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from rerank_plugins._results import RankResult
from rerank_plugins.errors import OverloadedError
from rerank_plugins.server.app import create_app
from tests._servers import serve_in_thread

pytestmark = pytest.mark.integration

QUERY = "capital of France"
DOCUMENTS = ["Paris is the capital of France.", "Bananas are yellow.", "Berlin is in Germany."]
GOOD = {"query": QUERY, "documents": DOCUMENTS}


def assert_error(response: Any, status: int, error_type: str, message: str) -> None:
    """The response is the shared error body with this status, type and exact message."""
    assert response.status_code == status, response.text
    assert response.json() == {
        "error": {"type": error_type, "message": message, "code": status},
        "detail": message,
    }


class QueueScorer:
    """A stand-in scorer with the queue report of the scorer contract, set by the test.

    It ranks passages by length. ``delay`` makes ``arank`` wait that long first;
    ``cancelled`` is set when a waiting ``arank`` is cancelled (what the server does to
    abandoned requests); ``calls`` records the queries that reached it.
    """

    model = "test/queue"

    def __init__(
        self,
        *,
        pending_requests: int = 0,
        pending_pairs: int = 0,
        pairs_per_second: float | None = None,
        delay: float = 0.0,
    ) -> None:
        self.calls: list[str] = []
        self._pending_requests = pending_requests
        self._pending_pairs = pending_pairs
        self._pairs_per_second = pairs_per_second
        self.delay = delay
        self.cancelled = threading.Event()

    @property
    def pending_requests(self) -> int:
        return self._pending_requests

    @property
    def pending_pairs(self) -> int:
        return self._pending_pairs

    @property
    def pairs_per_second(self) -> float | None:
        return self._pairs_per_second

    async def arank(
        self, query: str, passages: Sequence[str], *, top_n: int | None = None
    ) -> list[RankResult]:
        self.calls.append(query)
        try:
            await asyncio.sleep(self.delay)
        except asyncio.CancelledError:
            self.cancelled.set()
            raise
        order = sorted(range(len(passages)), key=lambda i: -len(passages[i]))
        return [RankResult(i, float(len(passages[i])), passages[i]) for i in order][:top_n]

    def count_tokens(self, query: str, passages: Sequence[str]) -> int:
        return len(passages)


RATE = "rerank_plugins_scorer_pairs_per_second"


def _samples(text: str) -> dict[str, float]:
    return {
        sample.name: sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if not sample.labels
    }


# --- work-bounded admission ------------------------------------------------------------------


def test_queue_over_max_queue_seconds_is_429_with_retry_after(make_client):
    """Bug: the queue was bounded by request count (10,000), so 429 practically never came."""
    scorer = QueueScorer(pending_pairs=600, pairs_per_second=20.0)
    client = make_client(scorer, max_queue_seconds=30)

    response = client.post("/v1/rerank", json=GOOD)

    assert_error(
        response,
        429,
        "overloaded_error",
        "The server is overloaded: 600 pairs are waiting, and with this request's 3 that is "
        "about 30.1 s of work at 20.0 pairs/s, more than max_queue_seconds=30. Retry after the "
        "Retry-After seconds, or send fewer documents per request.",
    )
    assert response.headers["retry-after"] == "30"
    assert scorer.calls == [], "a refused request must not be queued"


@pytest.mark.parametrize(
    ("pending_pairs", "pairs_per_second", "max_queue_seconds", "documents"),
    [
        (0, 1.0, 10, 50),  # nothing waits: any request within the limits is served
        (597, 20.0, 30, 3),  # exactly 30 s of work
        (10**6, None, 30, 3),  # no measured rate yet
        (10**6, 20.0, None, 3),  # bound turned off
    ],
    ids=["empty-queue", "at-the-bound", "no-rate-yet", "off"],
)
def test_requests_within_the_bound_are_served(
    make_client, pending_pairs, pairs_per_second, max_queue_seconds, documents
):
    scorer = QueueScorer(pending_pairs=pending_pairs, pairs_per_second=pairs_per_second)
    client = make_client(scorer, max_queue_seconds=max_queue_seconds)
    texts = [f"Paris {i}" for i in range(documents)]

    response = client.post("/v1/rerank", json={"query": QUERY, "documents": texts})

    assert response.status_code == 200, response.text
    assert len(response.json()["results"]) == documents


@pytest.mark.parametrize(
    ("retry_after", "header"),
    [(2.2, "3"), (0.1, "1"), (None, "1")],
    ids=["rounded-up", "at-least-1", "unknown"],
)
def test_scorer_overloaded_error_retry_after_becomes_the_header(
    make_client, make_raising_scorer, retry_after, header
):
    """The scorer's own queue bound estimates when there is room; clients get that estimate."""
    error = OverloadedError("1,000 pairs waiting", retry_after=retry_after)
    client = make_client(make_raising_scorer(error))

    response = client.post("/v1/rerank", json=GOOD)

    assert response.status_code == 429
    assert response.headers["retry-after"] == header


# --- deadlines -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("server_timeout", "headers"),
    [(None, {"X-Request-Timeout": "5"}), (5, {}), (5, {"X-Request-Timeout": "60"})],
    ids=["header", "server-option", "header-cannot-extend-the-server-option"],
)
def test_a_request_that_cannot_finish_in_time_is_503_without_scoring(
    make_client, server_timeout, headers
):
    """Bug: a request was scored even when its client would give up long before the answer."""
    scorer = QueueScorer(pending_pairs=97, pairs_per_second=10.0)
    client = make_client(scorer, request_timeout=server_timeout)

    response = client.post("/v1/rerank", json=GOOD, headers=headers)

    assert_error(
        response,
        503,
        "deadline_error",
        "This request would finish in about 10.0 s (97 pairs waiting and its own 3 at 10.0 "
        "pairs/s), after its deadline of 5 s, so it was not started. Send fewer documents, "
        "retry later, or allow more time (X-Request-Timeout header, `rerank-plugins serve "
        "--request-timeout`).",
    )
    assert response.headers["retry-after"] == "10"
    assert scorer.calls == []


def test_a_deadline_passing_while_scoring_is_504_and_cancels_the_job(make_client):
    """Bug: the server kept working for a client that had given up."""
    scorer = QueueScorer(delay=30.0)
    client = make_client(scorer)

    start = time.monotonic()
    response = client.post("/v1/rerank", json=GOOD, headers={"X-Request-Timeout": "0.3"})
    elapsed = time.monotonic() - start

    assert_error(
        response,
        504,
        "deadline_error",
        "The request's deadline of 0.3 s passed before it was scored; its job was cancelled. "
        "Send fewer documents, retry later, or allow more time (X-Request-Timeout header, "
        "`rerank-plugins serve --request-timeout`).",
    )
    assert elapsed < 5
    assert scorer.cancelled.wait(5), "the scoring task must be cancelled"


def test_a_deadline_long_enough_is_served(make_client):
    client = make_client(QueueScorer(pending_pairs=10, pairs_per_second=100.0), request_timeout=5)

    response = client.post("/v1/rerank", json=GOOD, headers={"X-Request-Timeout": "2.5"})

    assert response.status_code == 200, response.text


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "inf"])
def test_a_bad_timeout_header_is_422(make_client, word_overlap, value):
    client = make_client(word_overlap)

    response = client.post("/v1/rerank", json=GOOD, headers={"X-Request-Timeout": value})

    assert_error(
        response,
        422,
        "invalid_request_error",
        f"The X-Request-Timeout header must be a positive number of seconds, got {value!r}. "
        "Send for example 'X-Request-Timeout: 30', or omit it.",
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_queue_seconds": 0}, "max_queue_seconds must be a positive number of seconds"),
        ({"request_timeout": math.inf}, "request_timeout must be a positive number of seconds"),
        ({"request_timeout": True}, "request_timeout must be a positive number of seconds"),
    ],
    ids=["max-queue-seconds-0", "request-timeout-inf", "request-timeout-bool"],
)
def test_create_app_rejects_bad_queue_options(word_overlap, kwargs, message):
    with pytest.raises(ValueError, match=message):
        create_app(word_overlap, **kwargs)


# --- client disconnects ------------------------------------------------------------------------


def test_a_client_that_disconnects_has_its_job_cancelled():
    """Bug: a request whose client had timed out was still scored in full."""
    scorer = QueueScorer(delay=30.0)
    app = create_app(scorer)
    with serve_in_thread(app) as url:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(f"{url}/v1/rerank", json=GOOD, timeout=0.3)

        assert scorer.cancelled.wait(5), "the disconnect must cancel the scoring task"
        metrics = httpx.get(f"{url}/metrics").text
    assert (
        'rerank_plugins_http_requests_total{endpoint="/v1/rerank",method="POST",status="499"}'
        in (metrics)
    )


def test_a_client_that_disconnects_while_sending_its_body_is_no_error(caplog):
    """Bug: a client that went away during the upload was a 500 with a traceback."""
    scorer = QueueScorer()
    with serve_in_thread(create_app(scorer)) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(
                b"POST /v1/rerank HTTP/1.1\r\nHost: test\r\nContent-Length: 1000\r\n\r\n"
                b'{"query": "cap'
            )
            time.sleep(0.3)
        deadline = time.monotonic() + 5
        while "499" not in (metrics := httpx.get(f"{url}/metrics").text):
            assert time.monotonic() < deadline, metrics
            time.sleep(0.05)

    assert scorer.calls == []
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]


# --- the real scorer, slowed down ------------------------------------------------------------


class SlowModel:
    """Sleeps ``seconds`` in every forward pass of a torch scorer and counts the pairs scored.

    The hook sits on the classification head, which every forward pass runs once per batch.
    """

    def __init__(self, scorer: Any, seconds: float) -> None:
        self.seconds = seconds
        self.pairs = 0
        self._lock = threading.Lock()
        self._handle = scorer._network.classifier.register_forward_pre_hook(self._hook)

    def _hook(self, module: Any, args: tuple[Any, ...]) -> None:
        with self._lock:
            self.pairs += int(args[0].shape[0])
        time.sleep(self.seconds)

    def remove(self) -> None:
        self._handle.remove()


@pytest.fixture
def slow_scorer(tiny_bert: Any) -> Iterator[tuple[Any, SlowModel]]:
    """A real torch scorer on the tiny BERT, 4 pairs per batch, 0.1 s per batch."""
    from rerank_plugins import CrossEncoderScorer

    scorer = CrossEncoderScorer(str(tiny_bert), backend="torch", batch_size=4)
    slow = SlowModel(scorer, 0.1)
    yield scorer, slow
    slow.remove()
    scorer.close()


def _documents(count: int) -> list[str]:
    return [f"Paris is a city in France, fact number {i}." for i in range(count)]


def test_abandoned_requests_do_not_delay_the_next_one(slow_scorer):
    """Bug: work for clients that had timed out kept the worker busy (a 2-document request
    after three abandoned 300-document ones waited ~54 s)."""
    scorer, slow = slow_scorer
    busy_times: list[float] = []

    def post_busy(url: str) -> None:
        # The request the worker is busy with: 40 pairs, 10 batches (1 s on an idle machine).
        start = time.monotonic()
        response = httpx.post(
            f"{url}/v1/rerank", json={"query": QUERY, "documents": _documents(40)}, timeout=60
        )
        assert response.status_code == 200
        busy_times.extend([start, time.monotonic()])

    def abandon(url: str) -> None:
        # 40 pairs (10 batches) whose client gives up while the request is queued.
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{url}/v1/rerank", json={"query": QUERY, "documents": _documents(40)}, timeout=0.3
            )

    # No admission bound: this test is about disconnects, and the 120 waiting pairs stay
    # under the scorer's own smallest queue bound.
    with serve_in_thread(create_app(scorer, max_queue_seconds=None)) as url:
        # A server that has been serving: the scorer has measured its rate (which sizes its
        # queue bound), and the counter starts from zero.
        httpx.post(f"{url}/v1/rerank", json=GOOD, timeout=60).raise_for_status()
        slow.pairs = 0
        busy = threading.Thread(target=post_busy, args=(url,))
        busy.start()
        while slow.pairs == 0:
            time.sleep(0.01)
        abandoned = [threading.Thread(target=abandon, args=(url,)) for _ in range(3)]
        for thread in abandoned:
            thread.start()
        for thread in abandoned:
            thread.join()
        small = httpx.post(
            f"{url}/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS[:2]}, timeout=60
        )
        small_done = time.monotonic()
        busy.join()

    assert small.status_code == 200, small.text
    assert slow.pairs == 40 + 2, "the abandoned requests' pairs must never be scored"
    # Scoring the 120 abandoned pairs would take 3 times the busy request's time.
    busy_start, busy_done = busy_times
    assert small_done - busy_done < busy_done - busy_start


def test_abandoned_running_requests_stop_after_their_batch(slow_scorer):
    """Bug: a request already being scored went on to its end after its client left, so a
    small request behind three abandoned ones waited for all of them."""
    scorer, slow = slow_scorer

    def abandon(url: str) -> None:
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(
                f"{url}/v1/rerank", json={"query": QUERY, "documents": _documents(40)}, timeout=0.3
            )

    with serve_in_thread(create_app(scorer, max_queue_seconds=None)) as url:
        httpx.post(f"{url}/v1/rerank", json=GOOD, timeout=60).raise_for_status()
        slow.pairs = 0
        abandoned = [threading.Thread(target=abandon, args=(url,)) for _ in range(3)]
        for thread in abandoned:
            thread.start()
        for thread in abandoned:
            thread.join()
        small = httpx.post(
            f"{url}/v1/rerank", json={"query": QUERY, "documents": DOCUMENTS[:2]}, timeout=60
        )

    assert small.status_code == 200, small.text
    # The clients left after 0.3 s, about 3 batches of 4 pairs; all 120 would take 3 s.
    assert slow.pairs - 2 <= 60, "abandoned work must stop after the batch that was running"


def test_health_answers_at_once_while_the_worker_is_busy(slow_scorer):
    scorer, slow = slow_scorer
    with serve_in_thread(create_app(scorer)) as url:
        busy = threading.Thread(
            target=httpx.post,
            args=(f"{url}/v1/rerank",),
            kwargs={"json": {"query": QUERY, "documents": _documents(40)}, "timeout": 30},
        )
        busy.start()
        while slow.pairs == 0:
            time.sleep(0.01)

        start = time.monotonic()
        health = httpx.get(f"{url}/health", timeout=10)
        elapsed = time.monotonic() - start
        still_busy = slow.pairs < 40
        busy.join()

    assert health.status_code == 200
    assert still_busy, "the worker must still be busy when /health answers"
    assert elapsed < 1.0


# --- /metrics ----------------------------------------------------------------------------------


def test_metrics_report_the_queue_and_the_rate(make_client):
    client = make_client(QueueScorer(pending_requests=2, pending_pairs=40, pairs_per_second=12.5))

    samples = _samples(client.get("/metrics").text)

    assert samples["rerank_plugins_queue_requests"] == 2
    assert samples["rerank_plugins_queue_pairs"] == 40
    assert samples["rerank_plugins_scorer_pairs_per_second"] == 12.5


def test_metrics_queue_is_nan_for_a_scorer_that_does_not_report_it(make_client, word_overlap):
    samples = _samples(make_client(word_overlap).get("/metrics").text)

    assert math.isnan(samples["rerank_plugins_queue_requests"])
    assert math.isnan(samples["rerank_plugins_queue_pairs"])
    assert math.isnan(samples["rerank_plugins_scorer_pairs_per_second"])


def test_metrics_report_the_real_scorers_queue(make_client, tiny_bert):
    """CrossEncoderScorer reports its queue (the scorer contract of issue 9)."""
    from rerank_plugins import CrossEncoderScorer

    scorer = CrossEncoderScorer(str(tiny_bert))
    try:
        client = make_client(scorer)
        assert client.post("/v1/rerank", json=GOOD).status_code == 200
        # The worker measures the rate just after it has answered the round.
        deadline = time.monotonic() + 5
        while math.isnan((samples := _samples(client.get("/metrics").text))[RATE]):
            assert time.monotonic() < deadline, "no rate measured"
            time.sleep(0.01)
    finally:
        scorer.close()
    assert samples["rerank_plugins_queue_requests"] == 0
    assert samples["rerank_plugins_queue_pairs"] == 0
    assert samples[RATE] > 0


@pytest.mark.parametrize("path", ["/rerank", "/v1/rerank", "/v2/rerank", "/infinity/rerank"])
def test_openapi_declares_the_timeout_header_and_504(make_client, word_overlap, path):
    operation = make_client(word_overlap).get("/openapi.json").json()["paths"][path]["post"]

    assert {"200", "429", "503", "504"} <= set(operation["responses"])
    (header,) = operation["parameters"]
    assert header["name"] == "X-Request-Timeout"
    assert header["in"] == "header"
    assert header["required"] is False
    assert header["schema"] == {"type": "number", "exclusiveMinimum": 0}
