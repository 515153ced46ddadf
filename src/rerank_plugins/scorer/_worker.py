"""Dynamic micro-batching: one worker thread serves every caller of a scorer.

Callers (threads, asyncio tasks, adapters, the server) submit jobs; the worker takes what
has queued up (waiting at most ``max_wait`` for more), hands the jobs to the scorer to be
run as shared length-sorted batches, and each job's future gets exactly its own scores.
One thread owns the model and the tokenizer, so there is no tokenizer contention and no
thread oversubscription, whatever the number of callers.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from rerank_plugins.errors import OverloadedError

logger = logging.getLogger(__name__)


@dataclass(eq=False, slots=True)
class Job:
    """One caller's request: a query, its passages and the future that receives the scores."""

    query: str
    passages: Sequence[str]
    future: Future[Any] = field(default_factory=Future)


class MicroBatcher:
    """A bounded job queue drained by one daemon worker thread."""

    def __init__(
        self,
        run_jobs: Callable[[list[Job]], None],
        *,
        max_wait: float,
        max_pairs: int,
        max_queue: int,
        name: str,
    ) -> None:
        self._run_jobs = run_jobs
        self._max_wait = max_wait
        self._max_pairs = max_pairs
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=max_queue)
        self._name = name
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._closed = False

    def submit(self, query: str, passages: Sequence[str]) -> Future[Any]:
        """Queue a job and return its future; raise ``OverloadedError`` when the queue is full."""
        if self._closed:
            msg = "This scorer was closed; create a new one with get_scorer()."
            raise RuntimeError(msg)
        self._ensure_started()
        job = Job(query, passages)
        try:
            self._queue.put_nowait(job)
        except queue.Full as err:
            msg = (
                f"The scorer's queue is full ({self._queue.maxsize} waiting requests). "
                "Retry later, or raise max_queue."
            )
            raise OverloadedError(msg) from err
        return job.future

    def close(self) -> None:
        """Stop the worker after the jobs already queued; idempotent."""
        self._closed = True
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    def _ensure_started(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name=self._name, daemon=True)
                self._thread.start()

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs, stop = self._collect(first)
            live = [job for job in jobs if job.future.set_running_or_notify_cancel()]
            if live:
                try:
                    self._run_jobs(live)
                except BaseException as err:  # the worker must outlive any failure
                    logger.exception("Scoring batch failed")
                    for job in live:
                        if not job.future.done():
                            job.future.set_exception(err)
            if stop:
                return

    def _collect(self, first: Job) -> tuple[list[Job], bool]:
        """Take ``first`` plus whatever arrives within ``max_wait``, up to ``max_pairs`` pairs."""
        jobs = [first]
        pairs = len(first.passages)
        deadline = time.monotonic() + self._max_wait
        while pairs < self._max_pairs:
            remaining = deadline - time.monotonic()
            try:
                job = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if job is None:
                return jobs, True
            jobs.append(job)
            pairs += len(job.passages)
        return jobs, False
