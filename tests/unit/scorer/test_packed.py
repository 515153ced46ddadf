"""The padding-free, [CLS]-only forward gives transformers' logits, and only where it applies."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    BertConfig,
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
)

from rerank_plugins import CrossEncoderScorer
from rerank_plugins.scorer._packed import PackedEncoder, packed_encoder

MODELS = ["tiny_bert", "tiny_bert_2logit", "tiny_xlmr", "tiny_xlmr_2logit"]
QUERY = "why do cats sleep so much"
PASSAGES = [
    "cats sleep most of the day and purr when they are happy",
    "the train left the station on time",
    " ".join(["the volcano erupted and lava flowed down the mountain slope"] * 6),
    "富士山は日本で一番高い山です。",
    "",
]


def _batch(path: Path, passages: list[str]) -> dict[str, torch.Tensor]:
    tokenizer = AutoTokenizer.from_pretrained(path)
    return dict(tokenizer([QUERY] * len(passages), passages, padding=True, return_tensors="pt"))


@pytest.mark.parametrize("fixture", MODELS)
@pytest.mark.parametrize(
    "passages",
    [PASSAGES, PASSAGES[:1], [PASSAGES[1]] * 3],
    ids=["padded", "one-row", "no-padding"],
)
def test_logits_equal_transformers(
    fixture: str, passages: list[str], request: pytest.FixtureRequest
) -> None:
    path = request.getfixturevalue(fixture)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    encoder = packed_encoder(model)
    assert isinstance(encoder, PackedEncoder)
    inputs = _batch(path, passages)
    with torch.inference_mode():
        expected = model(**inputs).logits
        got = encoder(**inputs).logits
    assert got.shape == expected.shape
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def _one_layer_bert(**config: object) -> BertForSequenceClassification:
    """A random one-layer BERT classifier; ``config`` overrides its settings."""
    torch.manual_seed(0)
    settings: dict[str, object] = {
        "vocab_size": 50,
        "hidden_size": 16,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        **config,
    }
    return BertForSequenceClassification(BertConfig(**settings)).eval()


def test_single_layer_model_uses_the_first_token_shortcut_in_its_only_layer() -> None:
    model = _one_layer_bert(num_labels=2)
    ids = torch.randint(5, 50, (3, 9))
    mask = torch.ones_like(ids)
    mask[1, 6:] = 0
    mask[2, 2:] = 0
    encoder = packed_encoder(model)
    assert encoder is not None
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=mask).logits
        got = encoder(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_bfloat16_weights_stay_close_to_transformers(tiny_bert: Path) -> None:
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert).eval()
    model = model.to(torch.bfloat16)
    encoder = packed_encoder(model)
    assert encoder is not None
    inputs = _batch(tiny_bert, PASSAGES)
    with torch.inference_mode():
        expected = model(**inputs).logits.float()
        got = encoder(**inputs).logits.float()
    assert got.dtype == expected.dtype
    torch.testing.assert_close(got, expected, atol=0.05, rtol=0.02)


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(
            lambda: DistilBertForSequenceClassification(
                DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32)
            ),
            id="other-architecture",
        ),
        pytest.param(
            lambda: _one_layer_bert(position_embedding_type="relative_key"),
            id="relative-positions",
        ),
        pytest.param(lambda: _one_layer_bert(is_decoder=True), id="decoder"),
    ],
)
def test_other_models_run_through_transformers(model: object) -> None:
    assert packed_encoder(model()) is None  # type: ignore[operator]


def test_torch_scorer_runs_bert_through_it(tiny_bert: Path) -> None:
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="torch")
    try:
        assert isinstance(scorer._run_network, PackedEncoder)
    finally:
        scorer.close()
