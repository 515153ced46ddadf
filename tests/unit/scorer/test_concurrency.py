"""One worker serves many callers: thread safety, micro-batching, failures, cancellation, OOM."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch

from rerank_plugins import CrossEncoderScorer
from rerank_plugins.scorer._batching import plan_batches

QUERIES = [f"question {i} about cats and lava" for i in range(8)]
PASSAGES = [
    "cats purr",
    "lava flows down the volcano " * 20,
    "",
    "the train left the station",
    "bread rises in a warm oven " * 5,
]


@pytest.fixture
def scorer(tiny_bert: Path) -> CrossEncoderScorer:
    return CrossEncoderScorer(str(tiny_bert), device="cpu", max_wait_ms=5)


def test_eight_threads_get_their_own_serial_results(scorer: CrossEncoderScorer) -> None:
    """Guards against "Already borrowed" from a shared fast tokenizer and mixed-up results."""
    serial = {q: scorer.score(q, PASSAGES) for q in QUERIES}
    barrier = threading.Barrier(8)

    def call(query: str) -> list[float]:
        barrier.wait()
        return [x for _ in range(5) for x in scorer.score(query, PASSAGES)]

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(call, QUERIES))
    for query, result in zip(QUERIES, results, strict=True):
        assert result == pytest.approx(serial[query] * 5, abs=1e-6)


def test_concurrent_count_tokens_and_scoring(scorer: CrossEncoderScorer) -> None:
    expected = scorer.count_tokens("cats", PASSAGES)
    with ThreadPoolExecutor(8) as pool:
        counts = list(pool.map(lambda _: scorer.count_tokens("cats", PASSAGES), range(32)))
        scores = list(pool.map(lambda _: scorer.score("cats", PASSAGES), range(8)))
    assert counts == [expected] * 32
    assert all(s == pytest.approx(scores[0], abs=1e-6) for s in scores)


def test_concurrent_async_callers_are_coalesced(
    scorer: CrossEncoderScorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = {q: scorer.score(q, PASSAGES) for q in QUERIES}
    rounds: list[int] = []
    run_jobs = scorer._run_jobs

    def counting(jobs: list) -> None:  # type: ignore[type-arg]
        rounds.append(len(jobs))
        run_jobs(jobs)

    monkeypatch.setattr(scorer._batcher, "_run_jobs", counting)

    async def main() -> list[list[float]]:
        return await asyncio.gather(*(scorer.ascore(q, PASSAGES) for q in QUERIES))

    results = asyncio.run(main())
    for query, result in zip(QUERIES, results, strict=True):
        assert result == pytest.approx(serial[query], abs=1e-6)
    assert sum(rounds) == len(QUERIES)
    assert max(rounds) > 1, "concurrent callers should share a worker round"


def test_one_callers_failure_does_not_fail_the_others(
    scorer: CrossEncoderScorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = scorer.score("good query", PASSAGES)
    encode = scorer._encode

    def failing(tokenizer: object, query: str, passages: list[str]) -> object:
        if query == "poison":
            raise RuntimeError("tokenizer exploded")
        return encode(tokenizer, query, passages)

    monkeypatch.setattr(scorer, "_encode", failing)

    async def main() -> list[object]:
        return await asyncio.gather(
            scorer.ascore("good query", PASSAGES),
            scorer.ascore("poison", PASSAGES),
            scorer.ascore("good query", PASSAGES),
            return_exceptions=True,
        )

    good, bad, good_again = asyncio.run(main())
    assert good == pytest.approx(serial, abs=1e-6)
    assert good_again == pytest.approx(serial, abs=1e-6)
    assert isinstance(bad, RuntimeError)
    assert str(bad) == "tokenizer exploded"
    assert scorer.score("good query", PASSAGES) == pytest.approx(serial, abs=1e-6)


def test_a_failed_forward_fails_its_callers_and_the_worker_lives_on(
    scorer: CrossEncoderScorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    serial = scorer.score("cats", PASSAGES)
    forward = scorer._forward
    monkeypatch.setattr(scorer, "_forward", lambda *a: (_ for _ in ()).throw(ValueError("boom")))
    with pytest.raises(ValueError, match=r"^boom$"):
        scorer.score("cats", PASSAGES)
    monkeypatch.setattr(scorer, "_forward", forward)
    assert scorer.score("cats", PASSAGES) == pytest.approx(serial, abs=1e-6)


def test_cancelled_async_caller_leaves_nothing_stuck(scorer: CrossEncoderScorer) -> None:
    expected = scorer.score("cats", PASSAGES)

    async def main() -> list[float]:
        slow = [asyncio.ensure_future(scorer.ascore("cats", PASSAGES * 20)) for _ in range(4)]
        await asyncio.sleep(0)
        for task in slow:
            task.cancel()
        await asyncio.gather(*slow, return_exceptions=True)
        return await asyncio.wait_for(scorer.ascore("cats", PASSAGES), timeout=60)

    assert asyncio.run(main()) == pytest.approx(expected, abs=1e-6)
    assert all(task is not None for task in [scorer._batcher._thread])


def test_cuda_oom_splits_the_batch_and_retries(
    scorer: CrossEncoderScorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An injected CUDA OOM on any batch of more than one pair: every request still succeeds."""
    expected = scorer.score("cats", PASSAGES)
    forward = scorer._forward
    sizes: list[int] = []

    def oom_above_one(ids: list[list[int]], types: object) -> list[float]:
        sizes.append(len(ids))
        if len(ids) > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return forward(ids, types)  # type: ignore[arg-type]

    monkeypatch.setattr(scorer, "_forward", oom_above_one)
    assert scorer.score("cats", PASSAGES) == pytest.approx(expected, abs=1e-6)
    assert max(sizes) > 1
    assert sizes.count(1) == len(PASSAGES)


def test_closed_scorer_refuses_new_work(tiny_bert: Path) -> None:
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu")
    scorer.score("cats", PASSAGES)
    scorer.close()
    with pytest.raises(RuntimeError, match=r"^This scorer was closed"):
        scorer.score("cats", PASSAGES)


@pytest.mark.parametrize(
    ("lengths", "max_tokens", "max_size", "expected"),
    [
        ([], 100, 4, []),
        ([5, 50, 10, 20], 1000, 2, [[1, 3], [2, 0]]),
        ([5, 50, 10, 20], 50, 8, [[1], [3, 2], [0]]),
        ([300], 100, 8, [[0]]),
        ([10, 10, 10], 30, 8, [[0, 1, 2]]),
    ],
    ids=["empty", "size-cap", "token-budget", "over-budget-alone", "exact-budget"],
)
def test_plan_batches(
    lengths: list[int], max_tokens: int, max_size: int, expected: list[list[int]]
) -> None:
    assert plan_batches(lengths, max_tokens=max_tokens, max_size=max_size) == expected
