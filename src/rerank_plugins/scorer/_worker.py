"""Dynamic micro-batching: one worker thread serves every caller of a scorer.

Callers (threads, asyncio tasks, adapters, the server) submit jobs; the worker takes what
has queued up (waiting at most ``max_wait`` for more), hands the jobs to the scorer to be
run as shared length-sorted batches, and each job's future gets exactly its own scores.
One thread owns the model and the tokenizer, so there is no tokenizer contention and no
thread oversubscription, whatever the number of callers.

The worker holds only this batcher, never the scorer (the scorer hands in a callable that
reaches it through a weak reference), so a scorer that is dropped without ``close()`` is
freed and its thread ends. After ``os.fork()`` the child gets a fresh queue and starts its
own worker on first use: the parent's thread does not survive a fork.

With ``prepare_job`` (the scorer's ``overlap_tokenization``), an encoder thread tokenizes
the next round while a device thread scores the current one; see
:mod:`~rerank_plugins.scorer._pipeline`.
"""

from __future__ import annotations

import functools
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from rerank_plugins.errors import OverloadedError
from rerank_plugins.scorer._pipeline import WAKE, Handoff, Wake

logger = logging.getLogger(__name__)

# The measured rate is an exponential moving average over worker rounds.
_RATE_SMOOTHING = 0.2


class JobFuture(Future[Any]):
    """A future whose ``cancel()`` also reaches a running job: it stops after its batch.

    ``Future.cancel()`` cannot cancel a running future; ``abandoned`` records that its
    caller gave up anyway (an ``ascore`` task was cancelled, a client disconnected).
    """

    abandoned = False

    def cancel(self) -> bool:
        """Cancel a queued job; mark a running one abandoned so it is not scored further."""
        self.abandoned = True
        return super().cancel()


@dataclass(eq=False, slots=True)
class Job:
    """One caller's request: a query, its passages and the future that receives the scores."""

    query: str
    passages: Sequence[str]
    future: JobFuture = field(default_factory=JobFuture)
    queued: bool = True
    # What ``prepare_job`` returned for this job (its encoding), or the error it raised.
    prepared: Any = None


class MicroBatcher:
    """A job queue, bounded by waiting requests and pairs, drained by one daemon thread.

    With ``prepare_job``, two: an encoder thread and a device thread (see ``_pipeline``).

    Args:
        run_jobs: Scores a list of jobs and resolves their futures.
        max_wait: Seconds the worker waits for more jobs to join a round.
        max_pairs: Most pairs per worker round.
        max_queue: Most waiting requests.
        max_queue_pairs: Most waiting pairs; None bounds them at ``queue_seconds`` of work
            at the measured rate, and never below ``min_queue_pairs``.
        min_queue_pairs: The floor of the automatic pair bound (and the bound before the
            rate is measured).
        queue_seconds: The automatic pair bound in seconds of work.
        device: Where the model runs; a CUDA model cannot be used in a forked child.
        name: The worker thread's name.
        after_fork: Called in a forked child, for the owner's own per-process state.
        prepare_job: Encodes one job ahead of its round, on the encoder thread; its result
            (or the error it raises) is kept in ``job.prepared`` for ``run_jobs``. None:
            one thread collects and runs rounds, and ``run_jobs`` encodes.
    """

    def __init__(
        self,
        run_jobs: Callable[[list[Job]], None],
        *,
        max_wait: float,
        max_pairs: int,
        max_queue: int,
        max_queue_pairs: int | None,
        min_queue_pairs: int,
        queue_seconds: float,
        device: str,
        name: str,
        after_fork: Callable[[], None] | None = None,
        prepare_job: Callable[[Job], Any] | None = None,
    ) -> None:
        self._run_jobs = run_jobs
        self._prepare_job = prepare_job
        self._max_wait = max_wait
        self._max_pairs = max_pairs
        self._max_queue = max_queue
        self._max_queue_pairs = max_queue_pairs
        self._min_queue_pairs = min_queue_pairs
        self._queue_seconds = queue_seconds
        self._device = device
        self._name = name
        self._after_fork = after_fork
        self._closed = False
        self._fork_error: str | None = None
        self._rate: float | None = None
        self._reset()
        _batchers.add(self)

    def _reset(self) -> None:
        """Fresh queue, lock and counters: at construction and in a forked child."""
        self._queue: queue.SimpleQueue[Job | Wake | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._device_thread: threading.Thread | None = None
        self._handoff: Handoff[Job] = Handoff()
        self._pending_requests = 0
        self._pending_pairs = 0

    @property
    def pending_requests(self) -> int:
        """Requests queued and not yet taken by the worker."""
        return self._pending_requests

    @property
    def pending_pairs(self) -> int:
        """Pairs queued and not yet taken by the worker."""
        return self._pending_pairs

    @property
    def pairs_per_second(self) -> float | None:
        """The measured scoring rate (moving average); None before the first round."""
        return self._rate

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` (or :meth:`stop`) was called."""
        return self._closed

    def queue_pair_limit(self) -> int:
        """The most pairs that may wait: ``max_queue_pairs`` or the automatic bound."""
        if self._max_queue_pairs is not None:
            return self._max_queue_pairs
        if self._rate is None:
            return self._min_queue_pairs
        return max(self._min_queue_pairs, int(self._rate * self._queue_seconds))

    def submit(self, query: str, passages: Sequence[str]) -> JobFuture:
        """Queue a job and return its future; raise ``OverloadedError`` when the queue is full.

        A job is always admitted to an empty queue, however many pairs it has.
        """
        pairs = len(passages)
        with self._lock:
            if self._fork_error is not None:
                raise RuntimeError(self._fork_error)
            if self._closed:
                msg = "This scorer was closed; create a new one with get_scorer()."
                raise RuntimeError(msg)
            waiting = self._pending_pairs
            limit = self.queue_pair_limit()
            if self._pending_requests >= self._max_queue or (waiting and waiting + pairs > limit):
                retry_after = None if self._rate is None else waiting / self._rate
                msg = (
                    f"The scorer's queue is full ({self._pending_requests} requests, {waiting} "
                    f"pairs waiting; limits {self._max_queue} requests, {limit} pairs). Retry "
                    "later, or raise max_queue / max_queue_pairs."
                )
                raise OverloadedError(msg, retry_after=retry_after)
            job = Job(query, passages)
            self._pending_requests += 1
            self._pending_pairs += pairs
            if self._thread is None:
                self._start_threads()
            # Under the lock, so close() cannot queue its stop mark before this job.
            self._queue.put(job)
        job.future.add_done_callback(functools.partial(self._take, job))
        return job.future

    def _start_threads(self) -> None:
        """Start the worker (or the encoder and device threads); called under the lock."""
        if self._prepare_job is None:
            self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
        else:
            self._thread = threading.Thread(
                target=self._encode_loop, name=f"{self._name}.encode", daemon=True
            )
            self._device_thread = threading.Thread(
                target=self._device_loop, name=f"{self._name}.device", daemon=True
            )
            self._device_thread.start()
        self._thread.start()

    def close(self) -> None:
        """Stop the worker after the jobs already queued, and wait for it; idempotent.

        Called from a worker thread itself (a future's callback), it does not wait.
        """
        threads = self.stop()
        if threading.current_thread() not in threads:
            for thread in threads:
                thread.join()

    def stop(self) -> list[threading.Thread]:
        """Refuse new jobs and let the worker end after the queued ones; do not wait."""
        with self._lock:
            first = not self._closed
            self._closed = True
            threads = [t for t in (self._thread, self._device_thread) if t is not None]
            if first and threads:
                self._queue.put(None)
        return threads

    def _take(self, job: Job, _future: Future[Any] | None = None) -> None:
        """Count ``job`` out of the waiting work (taken by the worker, or cancelled)."""
        with self._lock:
            if job.queued:
                job.queued = False
                self._pending_requests -= 1
                self._pending_pairs -= len(job.passages)

    def _loop(self) -> None:
        """The one-thread worker: collect a round, then run it (``run_jobs`` encodes)."""
        while True:
            first = self._queue.get()
            if first is None:
                return
            if isinstance(first, Wake):
                continue
            jobs, stop = self._collect(first)
            self._run_live(jobs)
            if stop:
                return

    def _encode_loop(self) -> None:
        """The encoder thread: collect and encode the next round while the device runs."""
        handoff = self._handoff
        try:
            while True:
                handoff.wait_until_empty()  # at most one round waits for the device
                first = self._queue.get()
                if first is None:
                    return
                if isinstance(first, Wake):
                    continue
                jobs, stop = self._collect(first, handoff)
                handoff.put(jobs)
                if stop:
                    return
        finally:
            handoff.put(None)

    def _device_loop(self) -> None:
        """The device thread: score each round the encoder thread hands over."""
        handoff = self._handoff
        while (jobs := handoff.take()) is not None:
            try:
                self._run_live(jobs)
            finally:
                handoff.done()
                self._queue.put(WAKE)  # an encoder waiting on a busy device re-checks

    def _run_live(self, jobs: list[Job]) -> None:
        """Run the jobs not cancelled while they waited (queued or prefetched)."""
        live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
        if live:
            self._run_round(live)

    def _run_round(self, live: list[Job]) -> None:
        """Run the jobs, fail them all if the scorer itself fails, and measure the rate."""
        started = time.perf_counter()
        try:
            self._run_jobs(live)
        except BaseException as err:  # the worker must outlive any failure
            logger.exception("Scoring batch failed")
            for job in live:
                if not job.future.done():
                    job.future.set_exception(err)
            return
        elapsed = time.perf_counter() - started
        pairs = sum(len(job.passages) for job in live if not job.future.abandoned)
        if pairs and elapsed > 0:
            rate = pairs / elapsed
            previous = self._rate
            self._rate = (
                rate if previous is None else previous + _RATE_SMOOTHING * (rate - previous)
            )

    def _collect(self, first: Job, handoff: Handoff[Job] | None = None) -> tuple[list[Job], bool]:
        """Take ``first`` plus whatever arrives within ``max_wait``, up to ``max_pairs`` pairs.

        With ``handoff`` (the encoder thread), each job is encoded as it is taken, and the
        round stays open while the device is busy: it could not start sooner anyway.
        """
        self._take_and_prepare(first, handoff)
        jobs = [first]
        pairs = len(first.passages)
        deadline = time.monotonic() + self._max_wait
        while pairs < self._max_pairs:
            busy = handoff is not None and handoff.device_busy
            timeout = None if busy else max(deadline - time.monotonic(), 0.0)
            try:
                job = self._queue.get(timeout=timeout)
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            if isinstance(job, Wake):
                continue
            self._take_and_prepare(job, handoff)
            jobs.append(job)
            pairs += len(job.passages)
        return jobs, False

    def _take_and_prepare(self, job: Job, handoff: Handoff[Job] | None) -> None:
        """Count ``job`` out of the queue; on the encoder thread, encode it unless cancelled."""
        self._take(job)
        if handoff is None or self._prepare_job is None or job.future.cancelled():
            return
        try:
            job.prepared = self._prepare_job(job)
        except Exception as err:  # the job's own failure: its round gives it this error
            job.prepared = err

    def _after_fork_in_child(self) -> None:
        """The parent's worker thread and queued jobs do not exist here: start afresh."""
        self._reset()
        if self._after_fork is not None:
            self._after_fork()
        if self._device.startswith("cuda"):
            self._fork_error = (
                f"This scorer was loaded on {self._device!r} before the process was forked, "
                "and CUDA cannot be used in a forked child. Start workers with the 'spawn' "
                "method (multiprocessing.get_context('spawn')), or load the scorer after the "
                "fork (e.g. gunicorn without --preload; in Celery, in worker_process_init)."
            )


_T = TypeVar("_T")
_R = TypeVar("_R")


def weak_runner(method: Callable[[_T], _R]) -> Callable[[_T], _R]:
    """``method``, a bound method, reached through a weak reference to its object.

    The worker thread holds the batcher, never the scorer, so a scorer dropped without
    ``close()`` is freed (and its finalizer ends the thread).
    """
    weak = weakref.WeakMethod(method)

    def run_weakly(argument: _T) -> _R:
        bound = weak()
        if bound is None:
            msg = "The scorer was garbage-collected before it could answer this request."
            raise RuntimeError(msg)
        result: _R = bound(argument)
        return result

    return run_weakly


_batchers: weakref.WeakSet[MicroBatcher] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for batcher in list(_batchers):
        batcher._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
