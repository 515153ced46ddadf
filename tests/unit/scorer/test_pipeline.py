"""``overlap_tokenization``: the next round is tokenized while the device runs the current one.

The pipeline (``scorer/_pipeline.py``) moves encoding to a second thread, so its risks are
those of any hand-off: results reaching the wrong caller, a failure spreading from one
prefetched job to its round, a cancelled job scored anyway, ``close()`` losing a prefetched
round, and threads that do not restart after ``fork()``. These tests hold the device in the
middle of a round (a gated forward pass) to put jobs exactly where each risk lives.
"""

from __future__ import annotations

import gc
import multiprocessing
import random
import sys
import threading
import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import CancelledError, Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from rerank_plugins import CrossEncoderScorer
from rerank_plugins.scorer._options import resolve_overlap
from tests._tiny_models import RANKING_CASES

QUERIES = [query for query, _, _ in RANKING_CASES]
POOL = [passage for _, passages, _ in RANKING_CASES for passage in passages]
WAIT = 30  # seconds: generous, for a busy 2-core machine
FORK_OK = pytest.mark.skipif(
    sys.platform == "win32" or "fork" not in multiprocessing.get_all_start_methods(),
    reason="needs os.fork",
)


class Gate:
    """Wraps a scorer's forward pass: the first call waits until :meth:`release`.

    Records each forward call's rows (token ids) and each encoding's (thread, query).
    """

    def __init__(self, scorer: CrossEncoderScorer, monkeypatch: pytest.MonkeyPatch) -> None:
        self.entered = threading.Event()
        self.opened = threading.Event()
        self.forwarded: list[list[int]] = []
        self.encoded: list[tuple[str, str]] = []
        self.encoded_queries: dict[str, threading.Event] = {}
        forward, encode = scorer._forward, scorer._encode

        def gated(ids: list[list[int]], types: list[list[int]] | None) -> list[float]:
            self.entered.set()
            assert self.opened.wait(WAIT), "the test never released the gate"
            self.forwarded.extend(ids)
            return forward(ids, types)

        def recording(tokenizer: Any, query: str, passages: Sequence[str]) -> Any:
            result = encode(tokenizer, query, passages)
            self.encoded.append((threading.current_thread().name, query))
            self.encoded_queries.setdefault(query, threading.Event()).set()
            return result

        monkeypatch.setattr(scorer, "_forward", gated)
        monkeypatch.setattr(scorer, "_encode", recording)

    def wait_encoded(self, query: str) -> None:
        event = self.encoded_queries.setdefault(query, threading.Event())
        assert event.wait(WAIT), f"{query!r} was never encoded"

    def release(self) -> None:
        self.opened.set()


@pytest.fixture
def pipelined(tiny_bert: Path) -> Iterator[CrossEncoderScorer]:
    """A CPU scorer with the overlap on; batch_size=1, so a round holds at most 16 pairs."""
    scorer = CrossEncoderScorer(
        str(tiny_bert), device="cpu", backend="torch", overlap_tokenization=True, batch_size=1
    )
    yield scorer
    scorer.close()


@pytest.fixture
def reference(tiny_bert: Path) -> Iterator[CrossEncoderScorer]:
    """The same model on the one-thread worker."""
    scorer = CrossEncoderScorer(
        str(tiny_bert), device="cpu", backend="torch", overlap_tokenization=False
    )
    yield scorer
    scorer.close()


def _submit(scorer: CrossEncoderScorer, query: str, passages: list[str]) -> Future[Any]:
    future: Future[Any] = scorer._batcher.submit(query, passages)
    return future


def test_the_next_round_is_encoded_on_its_own_thread_while_the_device_runs(
    pipelined: CrossEncoderScorer,
    reference: CrossEncoderScorer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The point of the pipeline: a job that arrives while the device is busy is tokenized
    before the device is free, on the encoder thread (not the device thread)."""
    gate = Gate(pipelined, monkeypatch)
    first = _submit(pipelined, QUERIES[0], POOL[:3])
    assert gate.entered.wait(WAIT)
    second = _submit(pipelined, QUERIES[1], POOL[3:6])
    gate.wait_encoded(QUERIES[1])
    assert not first.done()  # still on the device while the next round was encoded
    gate.release()
    assert first.result(WAIT)[0] == pytest.approx(reference.score(QUERIES[0], POOL[:3]), abs=1e-6)
    assert second.result(WAIT)[0] == pytest.approx(reference.score(QUERIES[1], POOL[3:6]), abs=1e-6)
    threads = {name for name, _ in gate.encoded}
    assert threads == {pipelined._batcher._thread.name}  # type: ignore[union-attr]
    assert all(name.endswith(".encode") for name in threads)


def test_a_failing_job_in_a_prefetched_round_fails_alone(
    pipelined: CrossEncoderScorer,
    reference: CrossEncoderScorer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A prefetched round mixing good jobs, a job whose encoding fails and a job whose
    forward pass fails: each failing job gets its own error, the others their own scores."""
    gate = Gate(pipelined, monkeypatch)
    encode, forward = pipelined._encode, pipelined._forward
    poison = pipelined._tokenizer("knead", add_special_tokens=False)["input_ids"][0]
    assert poison != pipelined._tokenizer.unk_token_id

    def encode_failing(tokenizer: Any, query: str, passages: Sequence[str]) -> Any:
        if query == "bad encoding":
            raise ValueError("cannot encode this one")
        return encode(tokenizer, query, passages)

    def forward_failing(ids: list[list[int]], types: list[list[int]] | None) -> list[float]:
        if any(poison in row for row in ids):
            raise RuntimeError("this row breaks the model")
        return forward(ids, types)

    monkeypatch.setattr(pipelined, "_encode", encode_failing)
    monkeypatch.setattr(pipelined, "_forward", forward_failing)
    running = _submit(pipelined, QUERIES[0], POOL[:2])
    assert gate.entered.wait(WAIT)
    good = [_submit(pipelined, QUERIES[i], POOL[i : i + 2]) for i in (1, 2)]
    bad_encoding = _submit(pipelined, "bad encoding", POOL[:2])
    bad_forward = _submit(pipelined, QUERIES[3], ["knead", POOL[5]])
    last_good = _submit(pipelined, QUERIES[4], POOL[6:8])
    gate.wait_encoded(QUERIES[4])
    gate.release()
    with pytest.raises(ValueError, match=r"^cannot encode this one$"):
        bad_encoding.result(WAIT)
    with pytest.raises(RuntimeError, match=r"^this row breaks the model$"):
        bad_forward.result(WAIT)
    expected = [
        reference.score(QUERIES[i], POOL[start : start + 2])
        for i, start in ((0, 0), (1, 1), (2, 2), (4, 6))
    ]
    got = [future.result(WAIT)[0] for future in (running, *good, last_good)]
    assert got == [pytest.approx(scores, abs=1e-6) for scores in expected]


def test_a_cancelled_prefetched_job_is_not_scored(
    pipelined: CrossEncoderScorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A job cancelled after it was tokenized into the next round, before that round
    reached the device: cancel() succeeds and none of its rows run."""
    gate = Gate(pipelined, monkeypatch)
    running = _submit(pipelined, QUERIES[0], POOL[:1])
    assert gate.entered.wait(WAIT)
    doomed = _submit(pipelined, QUERIES[1], ["a passage only the doomed job has"])
    kept = _submit(pipelined, QUERIES[2], POOL[1:2])
    gate.wait_encoded(QUERIES[2])
    assert doomed.cancel()
    gate.release()
    assert len(running.result(WAIT)[0]) == 1
    assert len(kept.result(WAIT)[0]) == 1
    with pytest.raises(CancelledError):
        doomed.result(WAIT)
    doomed_ids = pipelined._tokenizer(QUERIES[1], "a passage only the doomed job has")
    assert doomed_ids["input_ids"] not in gate.forwarded
    assert len(gate.forwarded) == 2


def test_a_cancelled_job_still_queued_behind_a_full_prefetched_round_is_dropped(
    pipelined: CrossEncoderScorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a full round (16 pairs) waiting for the device, the next job stays queued:
    cancelling it drops it unencoded, and the queue counts it out."""
    gate = Gate(pipelined, monkeypatch)
    running = _submit(pipelined, QUERIES[0], POOL[:1])
    assert gate.entered.wait(WAIT)
    full = _submit(pipelined, QUERIES[1], (POOL * 2)[:16])
    gate.wait_encoded(QUERIES[1])
    queued = _submit(pipelined, QUERIES[2], POOL[:3])
    assert pipelined.pending_requests == 1
    assert queued.cancel()
    assert (pipelined.pending_requests, pipelined.pending_pairs) == (0, 0)
    gate.release()
    assert len(running.result(WAIT)[0]) == 1
    assert len(full.result(WAIT)[0]) == 16
    assert QUERIES[2] not in [query for _, query in gate.encoded]
    assert len(gate.forwarded) == 17


def test_close_while_a_round_is_prefetched_answers_it_then_stops_both_threads(
    pipelined: CrossEncoderScorer,
    reference: CrossEncoderScorer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """close() finishes the calls already taken (on the device and prefetched), then ends
    the encoder and device threads; later calls raise."""
    gate = Gate(pipelined, monkeypatch)
    running = _submit(pipelined, QUERIES[0], POOL[:2])
    assert gate.entered.wait(WAIT)
    prefetched = _submit(pipelined, QUERIES[1], POOL[2:4])
    gate.wait_encoded(QUERIES[1])
    closer = threading.Thread(target=pipelined.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive()  # close() waits for the round on the device
    gate.release()
    closer.join(WAIT)
    assert not closer.is_alive()
    assert running.result(0)[0] == pytest.approx(reference.score(QUERIES[0], POOL[:2]), abs=1e-6)
    assert prefetched.result(0)[0] == pytest.approx(
        reference.score(QUERIES[1], POOL[2:4]), abs=1e-6
    )
    batcher = pipelined._batcher
    assert batcher._thread is not None
    assert batcher._device_thread is not None
    assert not batcher._thread.is_alive()
    assert not batcher._device_thread.is_alive()
    with pytest.raises(RuntimeError, match=r"^This scorer was closed; create a new one"):
        pipelined.score(QUERIES[0], POOL[:1])


def _score_in_child(scorer: CrossEncoderScorer, results: Any) -> None:
    results.put(scorer.score(QUERIES[0], POOL[:4]))


@FORK_OK
def test_a_forked_child_restarts_both_pipeline_threads(
    pipelined: CrossEncoderScorer, reference: CrossEncoderScorer
) -> None:
    """After fork() the parent's encoder and device threads do not exist in the child;
    the after-fork hook gives the child a fresh hand-off and its own threads."""
    expected = pipelined.score(QUERIES[0], POOL[:4])
    assert pipelined._batcher._device_thread is not None
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_score_in_child, args=(pipelined, results))
    child.start()
    try:
        assert results.get(timeout=60) == pytest.approx(expected, abs=1e-6)
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    assert expected == pytest.approx(reference.score(QUERIES[0], POOL[:4]), abs=1e-6)
    assert pipelined.score(QUERIES[1], POOL[:2]) == pytest.approx(
        reference.score(QUERIES[1], POOL[:2]), abs=1e-6
    )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_many_concurrent_callers_each_get_their_own_scores(
    tiny_bert: Path, reference: CrossEncoderScorer, seed: int
) -> None:
    """Seeded property test: 48 callers on 12 threads, random queries, passage lists, batch
    sizes and waits, some cancelled; every other caller gets exactly the one-thread
    worker's scores for its own request."""
    rng = random.Random(seed)
    scorer = CrossEncoderScorer(
        str(tiny_bert),
        device="cpu",
        backend="torch",
        overlap_tokenization=True,
        batch_size=rng.choice([1, 2, 4, 8]),
        max_wait_ms=rng.choice([0.0, 1.0, 5.0]),
        max_queue_pairs=100_000,  # small batches make a small automatic queue bound
    )
    requests = [
        (rng.choice(QUERIES), rng.sample(POOL, rng.randint(1, min(12, len(POOL)))))
        for _ in range(48)
    ]
    cancelled = set(rng.sample(range(len(requests)), 6))

    def call(index: int) -> Any:
        query, passages = requests[index]
        future = scorer._batcher.submit(query, passages)
        if index in cancelled:
            future.cancel()
            return None
        return future.result(WAIT)[0]

    try:
        with ThreadPoolExecutor(max_workers=12) as pool:
            results = list(pool.map(call, range(len(requests))))
    finally:
        scorer.close()
    for index, (query, passages) in enumerate(requests):
        if index not in cancelled:
            assert results[index] == pytest.approx(reference.score(query, passages), abs=1e-6)


@pytest.mark.parametrize(
    ("requested", "device", "expected"),
    [(None, "cpu", False), (None, "cuda", True), (None, "cuda:1", True), (True, "cpu", True)],
    ids=["auto-cpu", "auto-cuda", "auto-cuda-1", "on-cpu"],
)
def test_the_overlap_is_on_for_cuda_and_off_on_the_cpu_by_default(
    requested: bool | None, device: str, expected: bool
) -> None:
    assert resolve_overlap(requested, device) is expected


def test_a_bad_overlap_value_names_it(tiny_bert: Path) -> None:
    with pytest.raises(
        TypeError, match=r"^overlap_tokenization must be True, False or None, got 'yes'\.$"
    ):
        CrossEncoderScorer(str(tiny_bert), device="cpu", overlap_tokenization="yes")  # type: ignore[arg-type]


def test_a_dropped_pipelined_scorer_is_freed_and_both_threads_end(tiny_bert: Path) -> None:
    """Guards against the encoder thread keeping the scorer alive through ``prepare_job``
    (it must reach the scorer weakly, as ``run_jobs`` does)."""
    scorer = CrossEncoderScorer(
        str(tiny_bert), device="cpu", backend="torch", overlap_tokenization=True
    )
    assert len(scorer.score(QUERIES[0], POOL[:2])) == 2
    batcher = scorer._batcher
    threads = [batcher._thread, batcher._device_thread]
    alive = weakref.ref(scorer)
    del scorer
    gc.collect()
    assert alive() is None
    for thread in threads:
        assert thread is not None
        thread.join(WAIT)
        assert not thread.is_alive()
