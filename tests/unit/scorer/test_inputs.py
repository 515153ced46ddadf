"""Bad input gets a clear error; edge cases are scored, never dropped."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from rerank_plugins import CrossEncoderScorer


@pytest.fixture(scope="module")
def scorer(tiny_bert: Path) -> CrossEncoderScorer:
    return CrossEncoderScorer(str(tiny_bert), device="cpu")


def test_empty_passages_return_empty_without_model_call(
    scorer: CrossEncoderScorer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(*args: object) -> None:
        raise AssertionError("the model must not be called")

    monkeypatch.setattr(scorer, "_forward", fail)
    assert scorer.score("query", []) == []
    assert scorer.rank("query", []) == []
    assert asyncio.run(scorer.ascore("query", [])) == []
    assert scorer.count_tokens("query", []) == 0


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("", "query must be a non-empty string, got ''."),
        ("   ", "query must be a non-empty string, got '   '."),
        (None, "query must be a str, got NoneType: None."),
        (42, "query must be a str, got int: 42."),
    ],
    ids=["empty", "blank", "none", "int"],
)
def test_bad_query_raises_value_error(
    scorer: CrossEncoderScorer, query: object, message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{message}$".replace(".", r"\.")):
        scorer.score(query, ["a passage"])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="query must be"):
        asyncio.run(scorer.ascore(query, ["a passage"]))  # type: ignore[arg-type]


def test_non_string_passage_names_its_index(scorer: CrossEncoderScorer) -> None:
    with pytest.raises(TypeError, match=r"^passages\[2\] must be a str, got int: 7\. Convert"):
        scorer.score("query", ["a", "b", 7])  # type: ignore[list-item]


def test_passages_as_a_single_string_is_rejected(scorer: CrossEncoderScorer) -> None:
    with pytest.raises(TypeError, match=r"^passages must be a list of strings, got str\.$"):
        scorer.score("query", "one passage")


@pytest.mark.parametrize(
    ("top_n", "expected"),
    [(1, 1), (3, 3), (4, 4)],
    ids=["one", "len", "len+1"],
)
def test_top_n_keeps_at_most_n(scorer: CrossEncoderScorer, top_n: int, expected: int) -> None:
    passages = ["cats purr", "", "lava flows", "cats sleep a lot " * 300]
    results = scorer.rank("cats", passages, top_n=top_n)
    assert len(results) == min(expected, len(passages))
    assert [r.score for r in results] == sorted((r.score for r in results), reverse=True)


@pytest.mark.parametrize("top_n", [0, -1, 1.5, True], ids=["zero", "negative", "float", "bool"])
def test_bad_top_n_raises(scorer: CrossEncoderScorer, top_n: object) -> None:
    with pytest.raises(ValueError, match=r"^top_n must be a positive int or None, got "):
        scorer.rank("cats", ["cats purr"], top_n=top_n)  # type: ignore[arg-type]


def test_rank_returns_every_passage_best_first_with_text(scorer: CrossEncoderScorer) -> None:
    passages = ["cats purr", "", "lava flows", "cats sleep a lot " * 300]
    scores = scorer.score("cats", passages)
    results = scorer.rank("cats", passages)
    assert sorted(r.index for r in results) == [0, 1, 2, 3]
    for result in results:
        assert result.score == scores[result.index]
        assert result.text == passages[result.index]
    assert [r.index for r in results] == sorted(range(4), key=lambda i: -scores[i])


def test_score_threshold_then_top_n(scorer: CrossEncoderScorer) -> None:
    passages = ["cats purr", "lava flows", "trains run", "cats sleep"]
    scores = sorted(scorer.score("cats", passages), reverse=True)
    threshold = scores[2]
    kept = scorer.rank("cats", passages, score_threshold=threshold)
    assert [r.score for r in kept] == scores[:3]
    assert [r.score for r in scorer.rank("cats", passages, top_n=2, score_threshold=threshold)] == (
        scores[:2]
    )


@pytest.mark.parametrize(
    "threshold", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"]
)
def test_non_finite_score_threshold_raises(scorer: CrossEncoderScorer, threshold: float) -> None:
    """Regression: score_threshold=nan compared false with every score and returned []."""
    message = rf"^score_threshold must be a finite number or None, got {threshold!r}\. Pass None"
    with pytest.raises(ValueError, match=message):
        scorer.rank("cats", ["cats purr"], score_threshold=threshold)
    with pytest.raises(ValueError, match=message):
        asyncio.run(scorer.arank("cats", ["cats purr"], score_threshold=threshold))


@pytest.mark.parametrize("threshold", [None, -1e9], ids=["no-threshold", "low-threshold"])
@pytest.mark.parametrize(
    ("top_n", "expected"), [(None, 3), (1, 1), (3, 3), (4, 3)], ids=["all", "1", "len", "len+1"]
)
def test_top_n_above_len_keeps_all(
    scorer: CrossEncoderScorer, threshold: float | None, top_n: int | None, expected: int
) -> None:
    passages = ["cats purr", "lava flows", "trains run"]
    results = scorer.rank("cats", passages, top_n=top_n, score_threshold=threshold)
    assert [r.index for r in results] == [r.index for r in scorer.rank("cats", passages)][:expected]


@pytest.mark.parametrize(
    ("query", "passages", "message"),
    [
        (
            "cats",
            ["cats purr", "half an emoji \ud83d here"],
            r"^passages\[1\] contains a lone surrogate '\\ud83d' at character 14, which is not "
            r"valid Unicode text",
        ),
        (
            "\udc80cats",
            ["cats purr"],
            r"^query contains a lone surrogate '\\udc80' at character 0, which is not valid",
        ),
    ],
    ids=["passage", "query"],
)
def test_lone_surrogate_is_named(
    scorer: CrossEncoderScorer, query: str, passages: list[str], message: str
) -> None:
    """Regression: a lone surrogate gave the tokenizer's bare 'TextInputSequence must be str'."""
    with pytest.raises(ValueError, match=message):
        scorer.score(query, passages)
    with pytest.raises(ValueError, match=message):
        scorer.count_tokens(query, passages)


def test_repair_suggested_for_lone_surrogates_works(scorer: CrossEncoderScorer) -> None:
    """The fix the message suggests gives text the scorer accepts, keeping real emoji."""
    broken = "cats \ud83d\ude00 purr \ud83d"
    repaired = broken.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    assert repaired == "cats \U0001f600 purr \ufffd"
    assert len(scorer.score("cats", [repaired])) == 1


def test_query_longer_than_max_length_is_truncated_not_crashed(tiny_bert: Path) -> None:
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", max_length=16)
    scores = scorer.score("cats sleep " * 40, ["cats purr", "lava flows"])
    assert len(scores) == 2


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("batch_size", 0, "batch_size must be a positive int, got 0."),
        ("max_batch_tokens", -5, "max_batch_tokens must be a positive int, got -5."),
        ("device", "tpu", "device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'tpu'."),
        (
            "dtype",
            "int4",
            "dtype must be 'auto', 'float32', 'float16', 'bfloat16' or 'int8', got 'int4'.",
        ),
        (
            "activation",
            "softmax",  # not elementwise: sentence-transformers can save it, we do not run it
            "activation must be one of 'auto', 'none', 'sigmoid', 'tanh', 'relu', 'relu6', "
            "'leakyrelu', 'prelu', 'elu', 'celu', 'selu', 'gelu', 'silu', 'mish', 'softplus', "
            "'softsign', 'hardtanh', 'hardsigmoid', 'hardswish', 'hardshrink', 'softshrink', "
            "'tanhshrink', 'logsigmoid', got 'softmax'.",
        ),
        ("max_length", 4, "max_length must be an int >= 8, got 4."),
        ("max_length", 100_000, "max_length=100000 exceeds the model's 512 position embeddings."),
    ],
)
def test_bad_options_raise_value_error(
    tiny_bert: Path, option: str, value: object, message: str
) -> None:
    with pytest.raises(ValueError, match="^" + message.replace(".", r"\.").replace("(", r"\(")):
        CrossEncoderScorer(str(tiny_bert), **{option: value})  # type: ignore[arg-type]


def test_count_tokens_counts_truncated_pairs(tiny_bert: Path) -> None:
    from transformers import AutoTokenizer

    short_pair = len(AutoTokenizer.from_pretrained(str(tiny_bert))("cats", "cats")["input_ids"])
    scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", max_length=32)
    assert scorer.count_tokens("cats", ["cats purr " * 100, "cats"]) == 32 + short_pair
