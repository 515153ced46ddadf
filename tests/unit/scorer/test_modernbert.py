"""ModernBERT cross-encoders (the japanese-reranker v2 family) score as sentence-transformers.

Regression (issue 11, item 3): the suite had no ModernBERT model, and ModernBERT took the
plain torch path on the CPU (no ONNX export). The tiny models have a sentencepiece
tokenizer, global and local (sliding-window, 16 tokens) attention layers, and ``cls`` or
``mean`` classifier pooling.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from rerank_plugins import CrossEncoderScorer
from tests._tiny_models import RANKING_CASES, TOPICS

MODELS = ["tiny_modernbert", "tiny_modernbert_mean"]
BACKENDS = ["torch", "onnx"]
QUERY = "猫は一日に何時間眠りますか？"
PASSAGES = [
    "猫は一日に十二時間から十六時間ほど眠ります。",
    "新幹線は東京と大阪を約二時間半で結ぶ高速鉄道です。" * 4,
    "",
    "A cat sleeps for twelve to sixteen hours a day. 😀🐈",
    "富士山は標高三七七六メートルで、日本で一番高い山です。",
]
LONG = "".join(p for t in TOPICS if t.language == "ja" and t.name != "猫" for p in t.passages)


def reference(path: Path, query: str, passages: list[str], **kwargs: object) -> np.ndarray:
    return CrossEncoder(str(path), device="cpu", **kwargs).predict([(query, p) for p in passages])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fixture", MODELS)
def test_scores_equal_sentence_transformers(
    fixture: str, backend: str, request: pytest.FixtureRequest
) -> None:
    path = request.getfixturevalue(fixture)
    scorer = CrossEncoderScorer(str(path), device="cpu", backend=backend)
    assert scorer.backend == backend
    np.testing.assert_allclose(
        scorer.score(QUERY, PASSAGES), reference(path, QUERY, PASSAGES), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("fixture", MODELS)
def test_truncated_scores_equal_sentence_transformers(
    fixture: str, backend: str, request: pytest.FixtureRequest
) -> None:
    """Pairs cut at 40 tokens, past the 16-token local attention window."""
    path = request.getfixturevalue(fixture)
    query = "猫は眠る"
    scorer = CrossEncoderScorer(str(path), device="cpu", backend=backend, max_length=40)
    np.testing.assert_allclose(
        scorer.score(query, PASSAGES),
        reference(path, query, PASSAGES, max_length=40),
        atol=1e-5,
        rtol=0,
    )


def test_cpu_default_is_onnx(tiny_modernbert: Path) -> None:
    """backend='auto' exports ModernBERT to ONNX on the CPU, as it does BERT."""
    assert CrossEncoderScorer(str(tiny_modernbert), device="cpu").backend == "onnx"


@pytest.mark.parametrize("fixture", MODELS)
def test_window_scores_are_the_models_on_the_window_tokens(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    """Windowed: each backend's best window is the model's score on exactly those tokens."""
    path = request.getfixturevalue(fixture)
    text = LONG + PASSAGES[0]
    results = {
        backend: CrossEncoderScorer(
            str(path), device="cpu", backend=backend, max_length=48, long_passages="window"
        ).rank(QUERY, [LONG, text])
        for backend in BACKENDS
    }
    assert [r.index for r in results["torch"]] == [r.index for r in results["onnx"]]
    for a, b in zip(results["torch"], results["onnx"], strict=True):
        assert (a.span, a.score) == (b.span, pytest.approx(b.score, abs=1e-5))
    best = results["torch"][0]
    assert best.index == 1
    assert PASSAGES[0] in text[best.span[0] : best.span[1]]

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    inside = [
        token
        for token, (begin, end) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)
        if best.span[0] <= begin and end <= best.span[1]
    ]
    query_ids = tokenizer(QUERY, add_special_tokens=False)["input_ids"]
    row = [tokenizer.cls_token_id, *query_ids, tokenizer.sep_token_id, *inside]
    row.append(tokenizer.sep_token_id)
    assert len(row) <= 48
    model = AutoModelForSequenceClassification.from_pretrained(str(path)).eval()
    with torch.inference_mode():
        logit = model(input_ids=torch.tensor([row])).logits[0, 0]
    assert best.score == pytest.approx(float(torch.sigmoid(logit)), abs=1e-5)


@pytest.mark.parametrize("fixture", MODELS)
def test_trained_models_rank_relevant_first(fixture: str, request: pytest.FixtureRequest) -> None:
    scorer = CrossEncoderScorer(str(request.getfixturevalue(fixture)), device="cpu")
    for query, passages, relevant in RANKING_CASES:
        assert scorer.rank(query, passages, top_n=1)[0].index == relevant, query
