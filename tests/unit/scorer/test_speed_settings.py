"""The speed defaults measured in docs/guides/performance.md, pinned so they do not drift."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest
import torch

from rerank_plugins import CrossEncoderScorer
from rerank_plugins.scorer import _options
from rerank_plugins.scorer._batching import plan_batches


def test_cpu_defaults_are_the_measured_ones(tiny_bert: Path) -> None:
    """~1k padded tokens per batch: 8k was ~1.6x slower on 2 cores (see the performance guide);
    512 where ONNX Runtime runs one batch per thread (~7% less CPU time than 1024)."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch_scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="torch")
        onnx_scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx")
        torch.set_num_threads(1)
        one_thread = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx")
    finally:
        torch.set_num_threads(before)
    assert (torch_scorer.batch_size, torch_scorer.max_batch_tokens) == (32, 1024)
    assert (onnx_scorer.batch_size, onnx_scorer.max_batch_tokens) == (32, 512)
    assert (one_thread.batch_size, one_thread.max_batch_tokens) == (32, 1024)
    explicit = CrossEncoderScorer(str(tiny_bert), device="cpu", max_batch_tokens=2048)
    assert explicit.max_batch_tokens == 2048
    assert (_options.GPU_BATCH_SIZE, _options.GPU_BATCH_TOKENS) == (512, 65_536)


def test_torch_backend_uses_sdpa_attention(tiny_bert: Path) -> None:
    """Guards the attention choice: eager attention was up to 1.6x slower at 4k-token batches."""
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="torch")
    assert scorer._network.config._attn_implementation == "sdpa"


def test_scoring_leaves_torch_thread_settings_alone(tiny_bert: Path) -> None:
    """The scorer must not change the process-wide torch thread count behind the caller's back."""
    before = (torch.get_num_threads(), torch.get_num_interop_threads())
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu")
    scorer.score("cats", ["cats purr", "lava flows"] * 20)
    assert (torch.get_num_threads(), torch.get_num_interop_threads()) == before


def _realistic_lengths(count: int, seed: int) -> list[int]:
    """Token counts like 100 retrieved passages: log-normal, median ~170, 40-512."""
    rng = random.Random(seed)
    return [max(40, min(512, round(math.exp(rng.gauss(math.log(170), 0.6))))) for _ in range(count)]


@pytest.mark.parametrize("seed", range(5))
def test_batches_respect_the_budget_and_cover_every_pair(seed: int) -> None:
    lengths = _realistic_lengths(100, seed)
    batches = plan_batches(lengths, max_tokens=1024, max_size=32)
    assert sorted(i for batch in batches for i in batch) == list(range(100))
    widths = [max(lengths[i] for i in batch) for batch in batches]
    assert widths == sorted(widths, reverse=True)  # longest first
    for batch, width in zip(batches, widths, strict=True):
        assert len(batch) <= 32
        assert len(batch) == 1 or len(batch) * width <= 1024


@pytest.mark.parametrize("seed", range(5))
def test_length_sorting_keeps_padding_small(seed: int) -> None:
    """Guards the main CPU win: retrieval-order batches of 32 pad ~2x; sorted ones under 10%."""
    lengths = _realistic_lengths(100, seed)
    batches = plan_batches(lengths, max_tokens=1024, max_size=32)
    padded = sum(len(batch) * max(lengths[i] for i in batch) for batch in batches)
    assert padded / sum(lengths) < 1.10
    unsorted = [list(range(start, min(start + 32, 100))) for start in range(0, 100, 32)]
    naive = sum(len(batch) * max(lengths[i] for i in batch) for batch in unsorted)
    assert naive / sum(lengths) > 1.5


def test_an_overlong_pair_gets_a_batch_of_its_own() -> None:
    batches = plan_batches([2000, 10, 10], max_tokens=1024, max_size=32)
    assert batches == [[0], [1, 2]]
