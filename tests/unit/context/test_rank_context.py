"""CrossEncoderScorer.rank/arank with the context options, on the tiny offline models."""

from __future__ import annotations

import asyncio
import unicodedata
from pathlib import Path
from typing import Any

import pytest

from rerank_plugins import CrossEncoderScorer
from tests._tiny_models import EN_RANKING_CASES, JA_RANKING_CASES

QUERY, TEXTS, RELEVANT = EN_RANKING_CASES[0]
JA_QUERY, JA_TEXTS, JA_RELEVANT = JA_RANKING_CASES[0]


@pytest.fixture(scope="module")
def scorer(tiny_bert: Path) -> CrossEncoderScorer:
    return CrossEncoderScorer(str(tiny_bert), device="cpu")


@pytest.fixture(scope="module")
def ja_scorer(tiny_xlmr: Path) -> CrossEncoderScorer:
    return CrossEncoderScorer(str(tiny_xlmr), device="cpu")


def spy_scoring(scorer: CrossEncoderScorer, monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record the passages each scoring call gets."""
    calls: list[list[str]] = []
    real = scorer._scores_and_spans

    def spy(query: str, passages: Any) -> Any:
        calls.append(list(passages))
        return real(query, passages)

    monkeypatch.setattr(scorer, "_scores_and_spans", spy)
    return calls


def test_count_text_tokens_is_the_tokenizer_count_without_special_tokens(
    scorer: CrossEncoderScorer, ja_scorer: CrossEncoderScorer, tiny_bert: Path, tiny_xlmr: Path
) -> None:
    from transformers import AutoTokenizer

    for model, path, text in ((scorer, tiny_bert, TEXTS[0]), (ja_scorer, tiny_xlmr, JA_TEXTS[0])):
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        assert model.count_text_tokens(text) == len(tokenizer.tokenize(text)) > 0
    long = " ".join(TEXTS * 40)
    assert scorer.count_text_tokens(long) > scorer.max_length, "counts are never truncated"


def test_budget_defaults_to_the_scorers_own_tokenizer(scorer: CrossEncoderScorer) -> None:
    counts = [scorer.count_text_tokens(t) for t in TEXTS]
    full = scorer.rank(QUERY, TEXTS)
    budget = counts[full[0].index] + counts[full[1].index]
    results = scorer.rank(QUERY, TEXTS, max_context_tokens=budget)
    assert [r.tokens for r in results] == [counts[r.index] for r in results]
    assert sum(counts[r.index] for r in results) <= budget
    assert [r.index for r in results][:2] == [full[0].index, full[1].index]
    assert [r.score for r in results] == [
        r.score for r in full if r.index in {x.index for x in results}
    ]


def test_budget_with_a_callable_and_top_n(scorer: CrossEncoderScorer) -> None:
    results = scorer.rank(
        QUERY, TEXTS, max_context_tokens=10_000, length_function=lambda t: len(t), top_n=2
    )
    assert [r.tokens for r in results] == [len(TEXTS[r.index]) for r in results]
    assert [r.index for r in results] == [r.index for r in scorer.rank(QUERY, TEXTS, top_n=2)]


def test_budget_with_a_hugging_face_tokenizer_path(
    scorer: CrossEncoderScorer, tiny_xlmr: Path
) -> None:
    results = scorer.rank(QUERY, TEXTS, max_context_tokens=10_000, length_function=str(tiny_xlmr))
    from transformers import AutoTokenizer

    other = AutoTokenizer.from_pretrained(str(tiny_xlmr))
    assert [r.tokens for r in results] == [len(other.tokenize(TEXTS[r.index])) for r in results]


def test_duplicates_are_scored_once(
    scorer: CrossEncoderScorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = (RELEVANT + 1) % len(TEXTS)
    texts = [*TEXTS, TEXTS[RELEVANT].upper(), "  " + TEXTS[other] + "\n"]
    calls = spy_scoring(scorer, monkeypatch)
    results = scorer.rank(QUERY, texts, deduplicate=True)
    assert calls == [TEXTS]
    assert results[0].index == RELEVANT
    assert results[0].duplicates == (len(TEXTS),)
    assert {r.index: r.duplicates for r in results}[other] == (len(TEXTS) + 1,)
    assert sorted(r.index for r in results) == list(range(len(TEXTS)))


def test_japanese_full_and_half_width_duplicates_are_scored_once(
    ja_scorer: CrossEncoderScorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A half-width (NFKC-different) copy of a Japanese passage is merged before scoring."""
    original = JA_TEXTS[JA_RELEVANT]
    half_width = original.translate({ord("。"): "｡", ord("、"): "､"})
    assert half_width != original
    assert unicodedata.normalize("NFKC", half_width) == original
    calls = spy_scoring(ja_scorer, monkeypatch)
    results = ja_scorer.rank(JA_QUERY, [*JA_TEXTS, half_width], deduplicate=True)
    assert calls == [JA_TEXTS]
    assert (results[0].index, results[0].duplicates) == (JA_RELEVANT, (len(JA_TEXTS),))


def test_japanese_budget_counts_subword_tokens(ja_scorer: CrossEncoderScorer) -> None:
    counts = [ja_scorer.count_text_tokens(t) for t in JA_TEXTS]
    best = ja_scorer.rank(JA_QUERY, JA_TEXTS)[0]
    results = ja_scorer.rank(JA_QUERY, JA_TEXTS, max_context_tokens=counts[best.index])
    assert (results[0].index, results[0].tokens) == (best.index, counts[best.index])
    assert sum(r.tokens or 0 for r in results) <= counts[best.index]


def test_long_context_order_keeps_scores(scorer: CrossEncoderScorer) -> None:
    relevance = scorer.rank(QUERY, TEXTS)
    layout = scorer.rank(QUERY, TEXTS, order="long_context")
    assert [r.index for r in layout] == [relevance[i].index for i in (0, 2, 3, 1)]
    assert {r.index: r.score for r in layout} == {r.index: r.score for r in relevance}


def test_arank_equals_rank(scorer: CrossEncoderScorer) -> None:
    options: dict[str, Any] = {
        "max_context_tokens": 40,
        "deduplicate": True,
        "order": "long_context",
    }
    texts = [*TEXTS, TEXTS[1]]
    assert asyncio.run(scorer.arank(QUERY, texts, **options)) == scorer.rank(
        QUERY, texts, **options
    )


def test_bad_context_option_fails_before_scoring(
    scorer: CrossEncoderScorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = spy_scoring(scorer, monkeypatch)
    with pytest.raises(
        ValueError, match=r"^max_context_tokens must be a positive int or None, got 0\.$"
    ):
        scorer.rank(QUERY, TEXTS, max_context_tokens=0)
    with pytest.raises(ValueError, match=r"^order must be 'relevance' or 'long_context'"):
        asyncio.run(scorer.arank(QUERY, TEXTS, order="middle"))  # type: ignore[arg-type]
    assert calls == []
