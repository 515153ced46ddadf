"""A failed request never changes another request's result (issue 9, item 1).

Requests scored together share length-sorted batches. A batch that fails (a token id past
the model's vocabulary, an ONNX Runtime error, CUDA out of memory on one pair) used to make
every later request of the round read its neighbours' rows: wrong scores and no error.
"""

from __future__ import annotations

import asyncio
import logging
import random
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from rerank_plugins import CrossEncoderScorer
from tests._tiny_models import RANKING_CASES

NEW_TOKEN = "<newtok>"
# Words of the tiny vocabulary that no good request below uses: a row holding one fails.
MARKERS = ("knead", "gluten", "freight", "leaven", "hauls")
GOOD_POOL = [p for query, passages, _ in RANKING_CASES[:3] for p in [query, *passages]]
LONG = " ".join(GOOD_POOL[1:6])


@pytest.fixture(scope="module")
def oov_model(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT with a tokenizer that knows one token more than the model's embeddings."""
    from transformers import AutoTokenizer

    path = tmp_path_factory.mktemp("tiny_bert_oov") / "model"
    shutil.copytree(tiny_bert, path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    tokenizer.add_tokens([NEW_TOKEN])
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(
    scope="module",
    params=[("torch", False), ("onnx", False), ("torch", True)],
    ids=["torch", "onnx", "torch-overlap"],
)
def scorer(request: pytest.FixtureRequest, oov_model: Path) -> CrossEncoderScorer:
    """Small batches, so that several requests share each batch; a long wait to coalesce.

    ``torch-overlap`` runs every isolation test through the tokenize/device pipeline too.
    """
    backend, overlap = request.param
    return CrossEncoderScorer(
        str(oov_model),
        device="cpu",
        backend=backend,
        batch_size=4,
        max_wait_ms=100,
        overlap_tokenization=overlap,
    )


class MarkedRowsError(ValueError):
    """The injected fault: names the marker words found in the failing batch."""


def _inject_marker_faults(scorer: CrossEncoderScorer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every forward pass whose rows hold a marker word fail, naming those markers."""
    tokenizer = scorer._tokenizer
    marker_ids = {tokenizer.convert_tokens_to_ids(word): word for word in MARKERS}
    assert tokenizer.unk_token_id not in marker_ids
    good_ids = {i for text in GOOD_POOL for i in tokenizer(text)["input_ids"]}
    assert not good_ids & marker_ids.keys()
    forward = scorer._forward

    def faulty(ids: list[list[int]], types: Any) -> list[float]:
        found = sorted({marker_ids[i] for row in ids for i in row if i in marker_ids})
        if found:
            raise MarkedRowsError("markers " + " ".join(found))
        return forward(ids, types)

    monkeypatch.setattr(scorer, "_forward", faulty)


def _random_request(rng: random.Random, kind: str, marker: str) -> tuple[str, list[str]]:
    query = rng.choice(GOOD_POOL)
    passages = [rng.choice([*GOOD_POOL, LONG]) for _ in range(rng.randint(1, 7))]
    if kind != "good":
        bad = f"{NEW_TOKEN} {rng.choice(GOOD_POOL)}" if kind == "oov" else f"{marker} cats"
        passages.insert(rng.randrange(len(passages) + 1), bad)
    return query, passages


def test_a_failed_batch_does_not_shift_the_next_requests_scores(
    scorer: CrossEncoderScorer,
) -> None:
    """Guards against the data corruption of issue 9: a request whose batch fails (a token
    past the model's vocabulary) made the next request of the round read its rows, and get
    ``[0.0, 0.0, s0, s1]`` instead of ``[s0, s1, s2, s3]`` with no error."""
    query, good = GOOD_POOL[0], GOOD_POOL[1:5]
    serial = scorer.score(query, good)
    bad = [f"{NEW_TOKEN} " + "word " * 600] * 8  # long rows: batches of their own

    async def both() -> list[Any]:
        return await asyncio.gather(
            scorer.ascore("q", bad), scorer.ascore(query, good), return_exceptions=True
        )

    failed, scores = asyncio.run(both())
    assert isinstance(failed, Exception)
    assert scores == pytest.approx(serial, abs=1e-5)


def test_random_mixes_of_good_and_failing_requests(
    scorer: CrossEncoderScorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Property (seeded): scored concurrently, every good request gets exactly its serial
    scores and every failing request its own error, never a neighbour's. Guards against the
    shifted rows of issue 9 and against good requests failing with a bad one's batch."""
    _inject_marker_faults(scorer, monkeypatch)
    rng = random.Random(9)
    for trial in range(12):
        kinds = [rng.choice(["good", "good", "oov", "marker"]) for _ in range(rng.randint(2, 7))]
        markers = rng.sample(MARKERS, len(kinds)) if len(kinds) <= len(MARKERS) else None
        requests = [
            _random_request(rng, kind, markers[k] if markers else MARKERS[k % len(MARKERS)])
            for k, kind in enumerate(kinds)
        ]
        serial = {k: scorer.score(*requests[k]) for k, kind in enumerate(kinds) if kind == "good"}

        async def together(requests: list[tuple[str, list[str]]] = requests) -> list[Any]:
            return await asyncio.gather(
                *(scorer.ascore(q, p) for q, p in requests), return_exceptions=True
            )

        results = asyncio.run(together())
        for k, (kind, result) in enumerate(zip(kinds, results, strict=True)):
            context = f"trial {trial}, request {k} ({kind}) of {kinds}"
            if kind == "good":
                assert result == pytest.approx(serial[k], abs=1e-5), context
            elif kind == "oov":
                assert isinstance(result, Exception), context
                assert not isinstance(result, MarkedRowsError), context
            else:
                own = [w for w in MARKERS if w in " ".join(requests[k][1])]
                assert isinstance(result, MarkedRowsError), context
                assert str(result) == f"markers {own[0]}", context


def test_cuda_oom_on_one_pair_fails_only_its_request(
    scorer: CrossEncoderScorer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Guards against a CUDA out-of-memory error on a single pair (after the batch was split
    down to it) failing, or shifting, the other requests of its batch. The mixed batch's
    failure is logged once."""
    marker_id = scorer._tokenizer.convert_tokens_to_ids(MARKERS[0])
    forward = scorer._forward

    def oom_on_marker(ids: list[list[int]], types: Any) -> list[float]:
        if any(marker_id in row for row in ids):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")
        return forward(ids, types)

    query = GOOD_POOL[0]
    goods = [GOOD_POOL[1:4], GOOD_POOL[4:9]]
    serial = [scorer.score(query, good) for good in goods]
    monkeypatch.setattr(scorer, "_forward", oom_on_marker)
    monkeypatch.setattr(scorer, "batch_size", 16)  # all three requests in one batch

    async def together() -> list[Any]:
        return await asyncio.gather(
            scorer.ascore(query, goods[0]),
            scorer.ascore(query, [GOOD_POOL[2], f"{MARKERS[0]} cats"]),
            scorer.ascore(query, goods[1]),
            return_exceptions=True,
        )

    with caplog.at_level(logging.WARNING, logger="rerank_plugins.scorer"):
        first, failed, second = asyncio.run(together())
    assert isinstance(failed, torch.cuda.OutOfMemoryError)
    assert first == pytest.approx(serial[0], abs=1e-5)
    assert second == pytest.approx(serial[1], abs=1e-5)
    retried = [r for r in caplog.records if "scoring each request alone" in r.getMessage()]
    assert len(retried) == 1
