"""The FLOP counts behind the benchmarks' fp32 ceiling equal what the models really compute."""

from __future__ import annotations

from pathlib import Path

import pytest

from rerank_plugins.scorer import _onnx_export

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


@pytest.mark.parametrize("tokens", [7, 40])
def test_pair_flops_count_the_matmuls_of_the_full_and_the_exported_model(
    tiny_bert: Path, tokens: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards the ceiling (GEMM rate / FLOPs per pair) against a formula that drifts from the
    export: torch's FLOP counter, run on one pair, gives the same numbers."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import AutoModelForSequenceClassification

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import _common

    model = AutoModelForSequenceClassification.from_pretrained(
        tiny_bert, attn_implementation="eager"
    ).eval()
    inputs = {
        "input_ids": torch.randint(5, model.config.vocab_size, (1, tokens)),
        "attention_mask": torch.ones(1, tokens, dtype=torch.long),
    }

    def counted() -> int:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(**inputs)
        return int(counter.get_total_flops())

    assert counted() == _common.pair_flops(model.config, tokens)
    with _onnx_export._first_token_last_layer(model):
        assert counted() == _common.cls_only_pair_flops(model.config, tokens)
