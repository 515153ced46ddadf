"""The scorer's queue: bounded by waiting pairs, abandoned work dropped (issue 9, item 4).

A queue bounded at 10,000 requests practically never refused work, and requests whose
callers had given up were still scored in full, so a short request sent after them waited
for all of it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import pytest

from rerank_plugins import CrossEncoderScorer, OverloadedError
from rerank_plugins.scorer._worker import Job, MicroBatcher

PASSAGES = ["A cat sleeps for sixteen hours a day.", "Lava flows down the volcano."]


class BlockingRunner:
    """A fake scorer: answers each job with its number of passages, once released."""

    def __init__(self, delay: float = 0.0) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.delay = delay
        self.seen: list[Job] = []

    def __call__(self, jobs: list[Job]) -> None:
        self.seen.extend(jobs)
        self.started.set()
        assert self.release.wait(10)
        time.sleep(self.delay)
        for job in jobs:
            job.future.set_result(len(job.passages))


def _batcher(runner: BlockingRunner, **options: Any) -> MicroBatcher:
    settings: dict[str, Any] = {
        "max_wait": 0.0,
        "max_pairs": 1,
        "max_queue": 10_000,
        "max_queue_pairs": None,
        "min_queue_pairs": 10,
        "queue_seconds": 30.0,
        "device": "cpu",
        "name": "test-batcher",
    }
    return MicroBatcher(runner, **(settings | options))


def _measured_rate(batcher: MicroBatcher) -> float | None:
    """The rate, measured just after a round's futures are answered (so wait a little)."""
    deadline = time.monotonic() + 10
    while batcher.pairs_per_second is None and time.monotonic() < deadline:
        time.sleep(0.001)
    return batcher.pairs_per_second


def _busy(batcher: MicroBatcher, runner: BlockingRunner) -> None:
    """Occupy the worker with a one-pair job, so that later jobs wait in the queue."""
    batcher.submit("q", ["p"])
    assert runner.started.wait(10)
    runner.started.clear()


def test_the_queue_is_bounded_by_waiting_pairs() -> None:
    """Guards against a queue bounded only by request count: a few large requests could
    queue minutes of work and never be refused."""
    runner = BlockingRunner()
    batcher = _batcher(runner, max_queue_pairs=10)
    _busy(batcher, runner)
    waiting = batcher.submit("q", ["p"] * 6)
    assert (batcher.pending_requests, batcher.pending_pairs) == (1, 6)
    with pytest.raises(OverloadedError, match=r"^The scorer's queue is full \(1 requests, 6 pairs"):
        batcher.submit("q", ["p"] * 5)
    fits = batcher.submit("q", ["p"] * 4)
    assert batcher.pending_pairs == 10
    runner.release.set()
    assert waiting.result(10) == 6
    assert fits.result(10) == 4
    assert batcher.pending_pairs == 0
    huge = batcher.submit("q", ["p"] * 50)  # an empty queue admits any request
    assert huge.result(10) == 50
    batcher.close()


def test_overloaded_error_estimates_retry_after_from_the_measured_rate() -> None:
    runner = BlockingRunner(delay=0.05)
    batcher = _batcher(runner, max_queue_pairs=10)
    assert batcher.pairs_per_second is None
    runner.release.set()
    assert batcher.submit("q", ["p"] * 5).result(10) == 5
    rate = _measured_rate(batcher)
    assert rate is not None
    assert 0 < rate <= 5 / 0.05
    runner.started.clear()
    runner.release.clear()
    _busy(batcher, runner)
    batcher.submit("q", ["p"] * 8)
    with pytest.raises(OverloadedError) as caught:
        batcher.submit("q", ["p"] * 3)
    assert caught.value.retry_after == pytest.approx(8 / rate)
    runner.release.set()
    batcher.close()


def test_the_automatic_pair_bound_follows_the_measured_rate() -> None:
    """max_queue_pairs=None: about queue_seconds of work, never below min_queue_pairs."""
    batcher = _batcher(BlockingRunner(), queue_seconds=30.0, min_queue_pairs=10)
    assert batcher.queue_pair_limit() == 10
    batcher._rate = 100.0
    assert batcher.queue_pair_limit() == 3000
    batcher._rate = 0.1
    assert batcher.queue_pair_limit() == 10


def test_a_cancelled_queued_job_is_dropped() -> None:
    """Guards against scoring work whose caller has gone, and counting it as waiting."""
    runner = BlockingRunner()
    batcher = _batcher(runner)
    _busy(batcher, runner)
    abandoned = batcher.submit("abandoned", ["p"] * 3)
    kept = batcher.submit("kept", ["p"] * 2)
    assert batcher.pending_pairs == 5
    assert abandoned.cancel()
    assert (batcher.pending_requests, batcher.pending_pairs) == (1, 2)
    runner.release.set()
    assert kept.result(10) == 2
    assert [job.query for job in runner.seen] == ["q", "kept"]
    batcher.close()


def test_scorer_reports_waiting_work_and_its_rate(tiny_bert: Path) -> None:
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", max_queue_pairs=7)
    assert (scorer.pending_requests, scorer.pending_pairs, scorer.pairs_per_second) == (0, 0, None)
    assert scorer._batcher.queue_pair_limit() == 7
    scorer.score("cats", PASSAGES)
    rate = _measured_rate(scorer._batcher)
    assert rate is not None
    assert rate > 0
    scorer.close()


@pytest.mark.parametrize(("option", "value"), [("max_queue_pairs", 0), ("max_queue", -1)])
def test_queue_bounds_must_be_positive(tiny_bert: Path, option: str, value: int) -> None:
    with pytest.raises(ValueError, match=rf"^{option} must be a positive int, got {value}\.$"):
        CrossEncoderScorer(str(tiny_bert), device="cpu", **{option: value})


def _counting_forward(
    scorer: CrossEncoderScorer, on_first: Any, on_others: Any = None
) -> list[int]:
    """Patch the scorer's forward to count batches, call ``on_first`` in the first one and
    ``on_others`` (if given) in every other one, before it runs."""
    forward = scorer._forward
    calls: list[int] = []
    lock = threading.Lock()

    def counting(ids: list[list[int]], types: Any) -> list[float]:
        with lock:
            calls.append(len(ids))
            first = len(calls) == 1
        if first:
            on_first()
        elif on_others is not None:
            on_others()
        return forward(ids, types)

    scorer._forward = counting  # type: ignore[method-assign]
    return calls


def test_a_cancelled_running_job_stops_after_its_current_batch(tiny_bert: Path) -> None:
    """Guards against abandoned requests being scored in full: a 40-pair job cancelled
    during its first batch of 2 must not run its other 19 batches."""
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", batch_size=2)
    futures = []

    def until_cancelled() -> None:  # the other batch thread's next batch waits for it
        deadline = time.monotonic() + 10
        while not futures[0].abandoned and time.monotonic() < deadline:
            time.sleep(0.001)

    calls = _counting_forward(scorer, lambda: futures[0].cancel(), until_cancelled)
    futures.append(scorer._batcher.submit("cats", PASSAGES * 20))
    with pytest.raises(CancelledError):
        futures[0].result(10)
    # Batches already running on the other batch threads finish: one per thread at most.
    assert calls == [2] * len(calls)
    assert 1 <= len(calls) <= scorer._parallel_batches
    assert scorer.score("cats", PASSAGES) == pytest.approx(
        CrossEncoderScorer(str(tiny_bert), device="cpu").score("cats", PASSAGES), abs=1e-6
    )


def test_cancelling_an_ascore_task_stops_its_running_job(tiny_bert: Path) -> None:
    """Guards against a cancelled ``ascore`` (a client that disconnected) keeping the worker
    busy with all of its batches."""
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", batch_size=2)
    submitted = []
    submit = scorer._batcher.submit

    def recording(query: str, passages: Any) -> Any:
        submitted.append(submit(query, passages))
        return submitted[-1]

    scorer._batcher.submit = recording  # type: ignore[method-assign]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task: asyncio.Task[list[float]]

        def until_the_cancellation_lands() -> None:
            deadline = time.monotonic() + 10
            while not submitted[0].abandoned and time.monotonic() < deadline:
                time.sleep(0.001)

        def cancel_from_the_loop() -> None:
            loop.call_soon_threadsafe(task.cancel)
            until_the_cancellation_lands()

        # The other batch thread waits too: otherwise it scores more batches while the
        # event loop, on a busy machine, is still on its way to running the cancellation.
        calls = _counting_forward(scorer, cancel_from_the_loop, until_the_cancellation_lands)
        task = asyncio.ensure_future(scorer.ascore("cats", PASSAGES * 20))
        with pytest.raises(asyncio.CancelledError):
            await task
        error = await asyncio.to_thread(submitted[0].exception, 10)
        assert isinstance(error, CancelledError)
        assert calls == [2] * len(calls)  # at most one running batch per batch thread
        assert 1 <= len(calls) <= scorer._parallel_batches

    asyncio.run(main())
