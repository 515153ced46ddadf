"""The English seed presets resolve to their card's settings and score as the card's snippet."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rerank_plugins import CrossEncoderScorer
from rerank_plugins.cli import main
from rerank_plugins.presets import PRESETS, resolve_preset

QUERY = "why do cats sleep so much"
PASSAGES = [
    "cats sleep most of the day and purr when they are happy",
    " ".join(["the volcano erupted and lava flowed down the mountain slope"] * 80),
    "the train left the station on time",
]


@pytest.mark.parametrize(
    ("name", "model", "options"),
    [
        (
            "reranker-bert-tiny-gooaq-bce-tanh-v4",
            "cross-encoder-testing/reranker-bert-tiny-gooaq-bce-tanh-v4",
            {"max_length": 512, "activation": "tanh"},
        ),
        (
            "xpmir-MiniLM-L12-DistillRankNET",
            "xpmir/cross-encoder-MiniLM-L12-DistillRankNET",
            {"max_length": 512, "activation": "none"},
        ),
    ],
)
def test_english_seed_presets_resolve_to_their_cards_options(
    name: str, model: str, options: dict[str, object]
) -> None:
    assert resolve_preset(name, {}) == (model, options)
    assert resolve_preset(name, {"activation": "sigmoid"})[1]["activation"] == "sigmoid"
    assert PRESETS[name].language == "en"


def test_models_command_lists_the_seed_presets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["models", "--language", "en", "--json"]) == 0
    rows = {row["name"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows["reranker-bert-tiny-gooaq-bce-tanh-v4"]["activation"] == "tanh"
    assert rows["xpmir-MiniLM-L12-DistillRankNET"]["activation"] == "none"


def test_tanh_preset_options_score_as_sentence_transformers_predict(
    tiny_bert: Path, tmp_path: Path
) -> None:
    """The card's usage is CrossEncoder.predict with the saved Tanh: scores in [-1, 1]."""
    CrossEncoder(str(tiny_bert), device="cpu", activation_fn=torch.nn.Tanh()).save(str(tmp_path))
    _, options = resolve_preset("reranker-bert-tiny-gooaq-bce-tanh-v4", {})
    ours = CrossEncoderScorer(str(tmp_path), device="cpu", **options).score(QUERY, PASSAGES)
    card = CrossEncoder(str(tmp_path), device="cpu").predict([(QUERY, p) for p in PASSAGES])
    np.testing.assert_allclose(ours, card, atol=1e-5, rtol=0)
    assert min(ours) < 0


@pytest.mark.parametrize(
    ("backend", "tolerance"),
    # Raw logits are unbounded (about +-10 here); fused ONNX kernels round differently.
    [("torch", 1e-5), ("onnx", 5e-5)],
)
def test_raw_logit_preset_options_score_as_the_transformers_snippet(
    tiny_bert: Path, backend: str, tolerance: float
) -> None:
    """The xpmir card: tokenizer(q, p, padding=True, truncation=True) -> model(...).logits."""
    _, options = resolve_preset("xpmir-MiniLM-L12-DistillRankNET", {})
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", backend=backend, **options)
    ours = scorer.score(QUERY, PASSAGES)
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_bert))
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_bert)).eval()
    features = tokenizer(
        [QUERY] * len(PASSAGES), PASSAGES, padding=True, truncation=True, return_tensors="pt"
    )
    with torch.inference_mode():
        card = model(**features).logits[:, 0].numpy()
    np.testing.assert_allclose(ours, card, atol=tolerance, rtol=0)
