"""Scorer lifecycle: freed when dropped, close() races, the registry, with blocks, fork.

Issue 9, items 2 and 3: a dropped scorer kept its model and thread forever; close() racing
submit() could leave a future no one resolves; two close() calls could raise; clear_scorers()
during a load could leave two models; a forked child hung on a scorer used in the parent.
"""

from __future__ import annotations

import gc
import multiprocessing
import random
import threading
import time
import weakref
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest

from rerank_plugins import CrossEncoderScorer, clear_scorers, get_scorer
from rerank_plugins.scorer import _registry
from rerank_plugins.scorer._worker import Job, MicroBatcher

PASSAGES = ["A cat sleeps for sixteen hours a day.", "Lava flows down the volcano.", ""]
FORK_OK = pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")


def _scorer_threads(model: Path) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"rerank-plugins-scorer[{model}]"]


def _batcher(run_jobs: Any = None, **options: Any) -> MicroBatcher:
    def answer(jobs: list[Job]) -> None:
        for job in jobs:
            job.future.set_result(len(job.passages))

    settings: dict[str, Any] = {
        "max_wait": 0.001,
        "max_pairs": 64,
        "max_queue": 10_000,
        "max_queue_pairs": None,
        "min_queue_pairs": 1_000,
        "queue_seconds": 30.0,
        "device": "cpu",
        "name": "test-batcher",
    }
    return MicroBatcher(run_jobs or answer, **(settings | options))


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_dropped_scorer_frees_its_model_and_thread(tiny_bert: Path, backend: str) -> None:
    """Guards against the worker thread holding the scorer: five scorers built in a loop
    and dropped without close() kept five models and five threads.

    Threads of scorers that other tests left open on the same model (a shared
    ``get_scorer`` instance) are not this test's, so only threads started here count.
    """
    earlier = set(_scorer_threads(tiny_bert))
    scorers, networks = [], []
    for _ in range(3):
        scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", backend=backend)
        assert len(scorer.score("cats", PASSAGES)) == len(PASSAGES)
        scorers.append(weakref.ref(scorer))
        networks.append(weakref.ref(scorer._network))
        del scorer
    gc.collect()
    deadline = time.monotonic() + 10
    while set(_scorer_threads(tiny_bert)) - earlier and time.monotonic() < deadline:
        time.sleep(0.01)
    assert [ref() for ref in scorers + networks] == [None] * 6
    assert set(_scorer_threads(tiny_bert)) - earlier == set()


def _race_submit_and_close(
    batcher: MicroBatcher, rng: random.Random
) -> tuple[list[Future[Any]], list[BaseException], list[BaseException]]:
    """Four threads submit while two call close(); return futures, refusals, close errors."""
    futures: list[Future[Any]] = []
    refused: list[BaseException] = []
    errors: list[BaseException] = []
    start = threading.Barrier(6)

    def submit(count: int) -> None:
        start.wait()
        for n in range(count):
            try:
                futures.append(batcher.submit("q", ["p"] * (n % 3 + 1)))
            except RuntimeError as err:
                refused.append(err)

    def close(delay: float) -> None:
        start.wait()
        time.sleep(delay)
        try:
            batcher.close()
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=submit, args=(rng.randint(1, 200),)) for _ in range(4)]
    threads += [threading.Thread(target=close, args=(rng.random() / 500,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return futures, refused, errors


def test_close_racing_submit_never_leaves_a_future_pending() -> None:
    """Property (seeded): with submitters and two concurrent close() calls racing, every
    submit() either raises "closed" or returns a future that is answered, and close() never
    raises. Guards against a job queued behind the worker's stop mark, waited on forever,
    and against the AttributeError of two concurrent close() calls."""
    rng = random.Random(3)
    for trial in range(30):
        batcher = _batcher(max_queue_pairs=1_000_000)
        futures, refused, errors = _race_submit_and_close(batcher, rng)
        assert errors == [], f"trial {trial}"
        assert all(f.result(timeout=5) >= 1 for f in futures), f"trial {trial}"
        assert all(str(err).startswith("This scorer was closed") for err in refused)
        assert batcher.pending_requests == batcher.pending_pairs == 0


def test_clear_scorers_during_a_load_cannot_leave_two_models(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Guards against clear_scorers() dropping the lock of a load in progress: a second
    get_scorer() for the same model then loaded it again, and two models stayed in memory."""
    loading, release = threading.Event(), threading.Event()
    built: list[object] = []

    class SlowScorer:
        closed = False
        _shared = False

        def __init__(self, model: str, **options: Any) -> None:
            loading.set()
            release.wait(10)
            built.append(self)

        def close(self) -> None:
            self.closed = True

    monkeypatch.setattr(_registry, "CrossEncoderScorer", SlowScorer)
    got: list[object] = []
    first = threading.Thread(target=lambda: got.append(get_scorer("org/model", device="cpu")))
    first.start()
    assert loading.wait(10)
    clear_scorers()
    second = threading.Thread(target=lambda: got.append(get_scorer("org/model", device="cpu")))
    second.start()
    time.sleep(0.05)
    release.set()
    first.join()
    second.join()
    assert len(built) == 1
    assert got == [built[0], built[0]]
    clear_scorers()


def test_a_with_block_closes_a_private_scorer(tiny_bert: Path) -> None:
    with CrossEncoderScorer(str(tiny_bert), device="cpu") as scorer:
        assert len(scorer.score("cats", PASSAGES)) == len(PASSAGES)
        assert not scorer.closed
    assert scorer.closed
    assert _scorer_threads(tiny_bert) == []
    with pytest.raises(RuntimeError, match=r"^This scorer was closed"):
        scorer.score("cats", PASSAGES)


def test_a_with_block_on_a_shared_scorer_is_refused(tiny_bert: Path) -> None:
    """Guards against one user's with block closing the scorer every adapter shares."""
    shared = get_scorer(str(tiny_bert), device="cpu")
    try:
        with (
            pytest.raises(TypeError, match=r"^get_scorer\(\) returns a scorer shared by"),
            shared,
        ):
            pass
        assert not shared.closed
    finally:
        clear_scorers()


def test_get_scorer_replaces_a_closed_shared_scorer(tiny_bert: Path) -> None:
    """Guards against get_scorer() handing out a scorer that someone closed."""
    first = get_scorer(str(tiny_bert), device="cpu")
    first.close()
    first.close()  # idempotent
    try:
        second = get_scorer(str(tiny_bert), device="cpu")
        assert second is not first
        assert len(second.score("cats", PASSAGES)) == len(PASSAGES)
    finally:
        clear_scorers()


def _score_in_child(scorer: CrossEncoderScorer, results: Any) -> None:
    try:
        results.put(scorer.score("cats", PASSAGES))
    except Exception as err:
        results.put(f"{type(err).__name__}: {err}")


def _run_forked(scorer: CrossEncoderScorer) -> Any:
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    child = context.Process(target=_score_in_child, args=(scorer, results))
    child.start()
    try:
        return results.get(timeout=60)
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()


@FORK_OK
@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_a_forked_child_scores_like_its_parent(tiny_bert: Path, backend: str) -> None:
    """Guards against a hang after fork(): the parent's worker thread does not survive it,
    and the child waited forever on a queue no thread drains."""
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", backend=backend)
    parent = scorer.score("cats", PASSAGES)
    assert _run_forked(scorer) == pytest.approx(parent, abs=1e-6)
    assert scorer.score("cats", PASSAGES) == pytest.approx(parent, abs=1e-6)


def _count_in_child(scorer: CrossEncoderScorer, results: Any) -> None:
    results.put(scorer.count_tokens("cats", PASSAGES))


@FORK_OK
def test_token_counting_in_a_forked_child_while_another_thread_counts(tiny_bert: Path) -> None:
    """Guards against a hang after fork(): a token-counting lock held by another thread at
    the fork stayed held in the child, where that thread does not exist."""
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="torch")
    expected = scorer.count_tokens("cats", PASSAGES)
    with scorer._counter.lock:  # as if another thread were counting at the fork
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        child = context.Process(target=_count_in_child, args=(scorer, results))
        child.start()
        try:
            assert results.get(timeout=60) == expected
        finally:
            child.join(10)
            if child.is_alive():
                child.kill()


@FORK_OK
def test_a_forked_child_of_a_cuda_scorer_names_the_fix(tiny_bert: Path) -> None:
    """Guards against a hang (or a raw CUDA error) when a scorer loaded on CUDA is used in a
    forked child; the device is faked on the CPU."""
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="torch")
    scorer.score("cats", PASSAGES)
    scorer._batcher._device = "cuda:0"
    message = _run_forked(scorer)
    assert message == (
        "RuntimeError: This scorer was loaded on 'cuda:0' before the process was forked, and "
        "CUDA cannot be used in a forked child. Start workers with the 'spawn' method "
        "(multiprocessing.get_context('spawn')), or load the scorer after the fork (e.g. "
        "gunicorn without --preload; in Celery, in worker_process_init)."
    )
