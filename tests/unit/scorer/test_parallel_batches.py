"""The ONNX backend on the CPU runs several batches at once, one thread each (issue 12 goal 5).

The scores must be the ones a single sequential run gives (same model, same rows), in input
order, for every request of a shared round.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from rerank_plugins import CrossEncoderScorer
from rerank_plugins.scorer import _onnx_cache
from rerank_plugins.scorer._batching import plan_batches
from rerank_plugins.scorer._encoding import Encoded
from rerank_plugins.scorer._jobs import EncodedRound, score_round
from rerank_plugins.scorer._worker import Job, JobFuture
from tests._tiny_models import RANKING_CASES

QUERY = "How long does a cat sleep each day?"
PASSAGES = [passage for _, passages, _ in RANKING_CASES for passage in passages]


@pytest.fixture
def two_threads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Two torch threads while scorers load (the ONNX session takes its count from torch)."""
    monkeypatch.setenv(_onnx_cache.CACHE_ENV, str(tmp_path / "cache"))
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize(
    ("count", "min_batches", "sizes"),
    [(5, 1, [5]), (5, 2, [3, 2]), (1, 2, [1]), (0, 2, []), (7, 3, [3, 2, 2])],
    ids=["one", "two", "single-item", "empty", "three"],
)
def test_min_batches_splits_small_rounds(count: int, min_batches: int, sizes: list[int]) -> None:
    batches = plan_batches([10] * count, max_tokens=1024, max_size=32, min_batches=min_batches)
    assert [len(batch) for batch in batches] == sizes
    assert sorted(i for batch in batches for i in batch) == list(range(count))


@pytest.mark.parametrize("seed", range(5))
def test_batches_side_by_side_carry_about_equal_tokens(seed: int) -> None:
    """Bug: 100 short pairs made 11 full batches and one of a single pair, so one of two
    threads idled for a whole batch at the end (~9% of a short request)."""
    rng = random.Random(seed)
    lengths = [rng.randint(45, 60) for _ in range(100)]
    batches = plan_batches(lengths, max_tokens=512, max_size=32, min_batches=2)
    assert sorted(i for batch in batches for i in batch) == list(range(100))
    assert len(batches) % 2 == 0
    tokens = [sum(lengths[i] for i in batch) for batch in batches]
    assert max(tokens) < 1.25 * min(tokens)
    for batch in batches:
        assert len(batch) * max(lengths[i] for i in batch) <= 512
        assert lengths[batch[0]] == max(lengths[i] for i in batch)  # longest first


def test_uneven_batches_stay_when_equal_ones_break_the_budget() -> None:
    """Equal-token batches are only used where every one keeps within the limits."""
    lengths = [500, 500, 200, 200, 100, 40, 40]  # equal tokens: [200], [200, 100, 40, 40]
    batches = plan_batches(lengths, max_tokens=512, max_size=32, min_batches=2)
    assert batches == [[0], [1], [2, 3], [4, 5, 6]]


def test_onnx_cpu_session_runs_one_thread_per_batch(tiny_bert: Path, two_threads: None) -> None:
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx")
    options = scorer._network._session.get_session_options()
    assert (scorer._parallel_batches, options.intra_op_num_threads) == (2, 1)


@pytest.mark.parametrize(("threads", "per_batch", "batch_tokens"), [(3, 1, 512), (8, 4, 1024)])
def test_more_threads_still_run_two_batches_at_once(
    tiny_bert: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    threads: int,
    per_batch: int,
    batch_tokens: int,
) -> None:
    """On N > 2 threads, two batches at once with N // 2 threads each, not N one-thread ones.

    N batches at once were only measured on 2 cores; on many cores they would leave a small
    request (one or a few batches) on a few of the threads.
    """
    monkeypatch.setenv(_onnx_cache.CACHE_ENV, str(tmp_path / "cache"))
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx")
    finally:
        torch.set_num_threads(before)
    options = scorer._network._session.get_session_options()
    assert (scorer._parallel_batches, options.intra_op_num_threads) == (2, per_batch)
    assert scorer.max_batch_tokens == batch_tokens
    scorer.close()


def test_parallel_batches_give_the_sequential_scores_in_order(
    tiny_bert: Path, two_threads: None
) -> None:
    """Small batches, so that the 2 threads score many of them at once; each passage must get
    the score that one batch at a time gives it, and the ranking must not change."""
    parallel = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx", batch_size=2)
    sequential = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx", batch_size=2)
    sequential._parallel_batches = 1
    reference = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="torch")
    got = parallel.score(QUERY, PASSAGES)
    expected = reference.score(QUERY, PASSAGES)
    assert got == pytest.approx(sequential.score(QUERY, PASSAGES), abs=1e-6)
    assert got == pytest.approx(expected, abs=1e-5)
    assert _ranking(got) == _ranking(expected)


def _ranking(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def test_concurrent_requests_each_get_their_own_scores(tiny_bert: Path, two_threads: None) -> None:
    """Requests coalesced into one round and scored by parallel batches: each gets exactly
    what it gets alone (guards against rows written into a neighbour's slice)."""
    scorer = CrossEncoderScorer(
        str(tiny_bert), device="cpu", backend="onnx", batch_size=3, max_wait_ms=100
    )
    requests = [(query, passages) for query, passages, _ in RANKING_CASES]
    serial = [scorer.score(query, passages) for query, passages in requests]

    async def together() -> list[list[float]]:
        return list(await asyncio.gather(*(scorer.ascore(q, p) for q, p in requests)))

    for got, alone in zip(asyncio.run(together()), serial, strict=True):
        assert got == pytest.approx(alone, abs=1e-6)


def test_score_round_runs_batches_on_that_many_threads() -> None:
    """Every batch is scored once, two at a time on the batch threads (the first two meet at
    a barrier, which fails if they ran one after the other), and every row lands in its place."""
    rows = [[7, i, *range(i % 5)] for i in range(20)]
    threads: set[str] = set()
    seen: list[int] = []
    lock = threading.Lock()
    meet = threading.Barrier(2, timeout=10)
    calls = itertools.count()

    def forward(ids: list[list[int]], types: list[list[int]] | None) -> list[float]:
        with lock:
            threads.add(threading.current_thread().name)
            seen.extend(row[1] for row in ids)
            call = next(calls)
        if call < 2:
            meet.wait()  # BrokenBarrierError (the batch fails) unless both run at once
        return [float(row[1] * 10 + len(row)) for row in ids]

    job = Job("q", [str(i) for i in range(20)], JobFuture())
    encoded = Encoded(rows, None, list(range(20)), [None] * 20)
    score_round(
        EncodedRound([job], rows, [], [0] * 20, {0: 0}, {0: encoded}),
        forward,
        max_tokens=8,
        max_size=32,
        parallel=2,
    )
    scores, _ = job.future.result(timeout=5)
    assert scores == [float(i * 10 + 2 + i % 5) for i in range(20)]
    assert sorted(seen) == list(range(20))
    assert len(threads) == 2
    assert all(name.startswith("rerank-plugins-batch") for name in threads)
