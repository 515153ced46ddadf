"""Scores equal sentence-transformers' CrossEncoder.predict on the same model (fp32, CPU)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from sentence_transformers import CrossEncoder

from rerank_plugins import CrossEncoderScorer
from tests._tiny_models import RANKING_CASES

LONG = " ".join(["the volcano erupted and lava flowed down the mountain slope"] * 80)
PASSAGES = [
    "cats sleep most of the day and purr when they are happy",
    LONG,
    "",
    "the train left the station on time",
    "cats sleep most of the day and purr when they are happy",
    "富士山は日本で一番高い山です。",
]
MODELS = ["tiny_bert", "tiny_bert_2logit", "tiny_xlmr", "tiny_xlmr_2logit"]


def reference_scores(path: Path, query: str, passages: list[str], **kwargs: object) -> np.ndarray:
    model = CrossEncoder(str(path), device="cpu", **kwargs)
    pairs = [(query, p) for p in passages]
    if model.num_labels == 2:
        return model.predict(pairs, apply_softmax=True)[:, 1]
    return model.predict(pairs)


@pytest.mark.parametrize("fixture", MODELS)
def test_scores_equal_sentence_transformers(fixture: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue(fixture)
    scorer = CrossEncoderScorer(str(path), device="cpu")
    query = "why do cats sleep so much"
    ours = scorer.score(query, PASSAGES)
    np.testing.assert_allclose(ours, reference_scores(path, query, PASSAGES), atol=1e-5, rtol=0)


@pytest.mark.parametrize("fixture", MODELS)
def test_truncation_keeps_query_and_matches_reference(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    """max_length cuts the passage only; scores still equal the reference's."""
    path = request.getfixturevalue(fixture)
    scorer = CrossEncoderScorer(str(path), device="cpu", max_length=32)
    query = "where does lava flow"
    ours = scorer.score(query, PASSAGES)
    ref = reference_scores(path, query, PASSAGES, max_length=32)
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)


@pytest.mark.parametrize("fixture", MODELS)
def test_trained_models_rank_relevant_first(fixture: str, request: pytest.FixtureRequest) -> None:
    scorer = CrossEncoderScorer(str(request.getfixturevalue(fixture)), device="cpu")
    for query, passages, relevant in RANKING_CASES:
        assert scorer.rank(query, passages, top_n=1)[0].index == relevant, query


def test_ascore_equals_score(tiny_bert: Path) -> None:
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu")
    query = "why do cats sleep so much"
    assert asyncio.run(scorer.ascore(query, PASSAGES)) == scorer.score(query, PASSAGES)


@pytest.mark.parametrize(
    ("batch_size", "max_batch_tokens"),
    [(1, 1), (2, 64), (64, 100_000)],
    ids=["one-per-batch", "small", "one-batch"],
)
def test_batching_does_not_change_scores(
    tiny_bert: Path, batch_size: int, max_batch_tokens: int
) -> None:
    query = "why do cats sleep so much"
    baseline = CrossEncoderScorer(str(tiny_bert), device="cpu").score(query, PASSAGES)
    scorer = CrossEncoderScorer(
        str(tiny_bert), device="cpu", batch_size=batch_size, max_batch_tokens=max_batch_tokens
    )
    np.testing.assert_allclose(scorer.score(query, PASSAGES), baseline, atol=1e-6, rtol=0)


def test_activation_none_returns_logits(tiny_bert: Path, tiny_bert_2logit: Path) -> None:
    query = "why do cats sleep so much"
    for path in (tiny_bert, tiny_bert_2logit):
        probabilities = CrossEncoderScorer(str(path), device="cpu").score(query, PASSAGES)
        logits = CrossEncoderScorer(str(path), device="cpu", activation="none").score(
            query, PASSAGES
        )
        np.testing.assert_allclose(1 / (1 + np.exp(-np.array(logits))), probabilities, atol=1e-6)


def test_saved_identity_activation_is_followed(tiny_bert: Path, tmp_path: Path) -> None:
    """A model saved by sentence-transformers with Identity activation returns raw logits."""
    import torch

    model = CrossEncoder(str(tiny_bert), device="cpu", activation_fn=torch.nn.Identity())
    model.save(str(tmp_path / "identity"))
    query = "why do cats sleep so much"
    ours = CrossEncoderScorer(str(tmp_path / "identity"), device="cpu")
    assert ours.activation == "none"
    reference = CrossEncoder(str(tmp_path / "identity"), device="cpu")
    # Raw logits reach ~6 here: the ONNX default and torch are each up to ~1e-5 from float64.
    np.testing.assert_allclose(
        ours.score(query, PASSAGES),
        reference.predict([(query, p) for p in PASSAGES]),
        rtol=1e-5,
        atol=1e-5,
    )


def test_duplicates_are_kept_with_equal_scores(tiny_bert: Path) -> None:
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu")
    scores = scorer.score("cats", ["cats purr", "cats purr", "cats purr"])
    assert len(scores) == 3
    assert scores[0] == pytest.approx(scores[1], abs=1e-6) == pytest.approx(scores[2], abs=1e-6)
