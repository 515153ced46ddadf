"""Long passages: sentence-aligned windows (plan_windows) and ``long_passages="window"``."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from rerank_plugins import CrossEncoderScorer
from rerank_plugins._text import split_sentences
from rerank_plugins.scorer._windows import passage_windows, plan_windows
from tests._tiny_models import EN_RANKING_CASES, TOPICS

# ----------------------------------------------------------------- plan_windows, no model


def spans_of(
    text: str, offsets: list[tuple[int, int]], *, size: int, stride: int
) -> list[tuple[int, int]]:
    """The character spans of :func:`plan_windows`' windows."""
    return [(w.start, w.end) for w in plan_windows(text, offsets, size=size, stride=stride)]


def word_offsets(text: str) -> list[tuple[int, int]]:
    """One token per run of word characters (punctuation is not a token)."""
    return [(m.start(), m.end()) for m in re.finditer(r"\w+", text)]


def char_offsets(text: str) -> list[tuple[int, int]]:
    """One token per non-space character, as a character-level Japanese tokenizer."""
    return [(i, i + 1) for i, c in enumerate(text) if not c.isspace()]


def tokens_in(span: tuple[int, int], offsets: list[tuple[int, int]]) -> int:
    return sum(1 for start, _ in offsets if span[0] <= start < span[1])


def sentence_edges(text: str) -> tuple[set[int], set[int]]:
    spans = split_sentences(text)
    return {s for s, _ in spans}, {e for _, e in spans}


def check_covers(text: str, windows: list[tuple[int, int]]) -> None:
    """Windows start at 0, end at len(text), and leave no gap between them."""
    assert windows[0][0] == 0
    assert windows[-1][1] == len(text)
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert start <= end, f"gap between windows: {windows}"


JA_TEXT = "猫が好きです。犬も好きです！鳥はどうですか？魚も飼っています。亀はのんびりしています。"
EN_TEXT = (
    "Dr. Smith moved to Kyoto in 2019. He teaches at a small school! "
    "Does he like it? He says the food is great, e.g. the tofu. Winters are cold."
)


@pytest.mark.parametrize(
    ("text", "offsets"),
    [
        pytest.param("短い文です。", char_offsets("短い文です。"), id="ja"),
        pytest.param("A short passage. Two sentences.", word_offsets("A short."), id="en"),
        pytest.param("", [], id="empty"),
    ],
)
def test_short_passage_is_one_window_over_the_whole_text(
    text: str, offsets: list[tuple[int, int]]
) -> None:
    assert spans_of(text, offsets, size=10, stride=5) == [(0, len(text))]


def test_passage_of_exactly_window_size_is_one_window() -> None:
    text = "一二三四五六七八九十"
    assert spans_of(text, char_offsets(text), size=10, stride=5) == [(0, 10)]
    assert len(spans_of(text, char_offsets(text), size=9, stride=5)) > 1


@pytest.mark.parametrize("size", [12, 14, 20, 30])  # the longest sentence is 12
def test_japanese_windows_start_and_end_at_sentence_boundaries(size: int) -> None:
    offsets = char_offsets(JA_TEXT)
    windows = spans_of(JA_TEXT, offsets, size=size, stride=size // 2)
    starts, ends = sentence_edges(JA_TEXT)
    assert len(starts) == 5, "。！？ each end a sentence"
    for window in windows:
        assert window[0] in starts
        assert window[1] in ends
        assert tokens_in(window, offsets) <= size
        assert JA_TEXT[window[1] - 1] in "。！？"
    check_covers(JA_TEXT, windows)


@pytest.mark.parametrize("size", [10, 12, 20])  # the longest sentence is 10
def test_english_windows_start_and_end_at_sentence_boundaries(size: int) -> None:
    offsets = word_offsets(EN_TEXT)
    windows = spans_of(EN_TEXT, offsets, size=size, stride=size // 2)
    starts, ends = sentence_edges(EN_TEXT)
    for window in windows:
        assert window[0] in starts
        assert window[1] in ends
        assert tokens_in(window, offsets) <= size
        text = EN_TEXT[window[0] : window[1]]
        assert not text.startswith(("Smith", "the tofu")), "abbreviations do not end sentences"
    check_covers(EN_TEXT, windows)


def test_windows_advance_by_stride_and_overlap() -> None:
    """Ten one-token sentences, windows of 4 every 2 tokens: each overlaps the next by 2."""
    text = "Cats. Dogs. Birds. Fish. Frogs. Mice. Owls. Bats. Hens. Cows."
    windows = spans_of(text, word_offsets(text), size=4, stride=2)
    assert [text[s:e].split() for s, e in windows] == [
        ["Cats.", "Dogs.", "Birds.", "Fish."],
        ["Birds.", "Fish.", "Frogs.", "Mice."],
        ["Frogs.", "Mice.", "Owls.", "Bats."],
        ["Owls.", "Bats.", "Hens.", "Cows."],
    ]


def test_stride_equal_to_size_gives_disjoint_windows() -> None:
    text = "Cats. Dogs. Birds. Fish. Frogs. Mice."
    windows = spans_of(text, word_offsets(text), size=2, stride=2)
    assert [text[s:e].split() for s, e in windows] == [
        ["Cats.", "Dogs."],
        ["Birds.", "Fish."],
        ["Frogs.", "Mice."],
    ]
    for (_, end), (start, _) in itertools.pairwise(windows):
        assert start == end


def test_sentence_longer_than_a_window_is_cut_at_token_boundaries() -> None:
    text = "あいうえおかきくけこさしすせそたちつてと。短い文。"
    offsets = char_offsets(text)
    windows = spans_of(text, offsets, size=8, stride=4)
    token_starts = {start for start, _ in offsets}
    assert [text[s:e] for s, e in windows] == [
        "あいうえおかきく",
        "けこさしすせそた",
        "ちつてと。",
        "短い文。",
    ]
    for window in windows:
        assert window[0] in token_starts
        assert tokens_in(window, offsets) <= 8


def test_no_window_lies_inside_the_previous_one() -> None:
    """Regression: a window ending where the previous one ended (a subset) was emitted.

    With sentences of 7, 7, 8 and 9 characters, windows of 14 and a stride of 7, the
    second window used to be the second sentence alone, already inside the first window.
    """
    windows = spans_of(JA_TEXT, char_offsets(JA_TEXT), size=14, stride=7)
    for (start_a, end_a), (start_b, end_b) in itertools.pairwise(windows):
        assert start_b > start_a
        assert end_b > end_a
    assert [JA_TEXT[s:e] for s, e in windows][:2] == [
        "猫が好きです。犬も好きです！",
        "鳥はどうですか？",
    ]


def test_python_tokenizer_windows_are_exact_per_sentence() -> None:
    """Regression: Python tokenizers have no offset mapping (KeyError 'offset_mapping').

    Their windows are built from each sentence's own tokens: a window's ids are exactly the
    tokens of its span's text, and no window holds more than ``size`` of them.
    """

    class CharTokenizer:
        is_fast = False

        def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
            return {"input_ids": [ord(c) for c in text if not c.isspace()]}

    tokenizer = CharTokenizer()
    ((ids, windows),) = passage_windows(tokenizer, [JA_TEXT], size=12, stride=6)
    assert ids == tokenizer(JA_TEXT)["input_ids"]
    starts, ends = sentence_edges(JA_TEXT)
    for window in windows:
        assert (
            ids[window.first : window.last]
            == tokenizer(JA_TEXT[window.start : window.end])["input_ids"]
        )
        assert window.last - window.first <= 12
        assert window.start in starts
        assert window.end in ends
    check_covers(JA_TEXT, [(w.start, w.end) for w in windows])


# ------------------------------------------------------------ the scorer, tiny model

# The query is 9 tokens, so a window holds 20 passage tokens: one sentence of the corpus
# (13 to 19 tokens each). The tiny model judges a lone sentence well but is easily
# distracted by an off-topic neighbour, which a real model is not.
MAX_LENGTH = 32
QUERY, CASE_PASSAGES, RELEVANT = EN_RANKING_CASES[0]
ANSWER = CASE_PASSAGES[RELEVANT]
DISTRACTORS = [p for i, p in enumerate(CASE_PASSAGES) if i != RELEVANT]
# Off-topic sentences, far longer than MAX_LENGTH tokens in all.
FILLER = " ".join(
    p for t in TOPICS if t.language == "en" and ANSWER not in t.passages for p in t.passages
)
LONG = f"{FILLER} {ANSWER}"


def scorer(path: Path, long_passages: str, **options: object) -> CrossEncoderScorer:
    return CrossEncoderScorer(
        str(path), device="cpu", max_length=MAX_LENGTH, long_passages=long_passages, **options
    )


def test_filler_is_longer_than_max_length(tiny_bert: Path) -> None:
    truncating = scorer(tiny_bert, "truncate")
    assert truncating.count_tokens(QUERY, [FILLER]) == MAX_LENGTH
    assert truncating.count_tokens(QUERY, [ANSWER]) < MAX_LENGTH


def test_window_finds_the_relevant_sentence_past_max_length(tiny_bert: Path) -> None:
    """The issue's acceptance test: only window mode sees the answer at the end."""
    candidates = [FILLER, LONG]  # FILLER is LONG without its last sentence

    truncated = scorer(tiny_bert, "truncate").rank(QUERY, candidates)
    # Both are cut to the same first tokens, so they tie and input order decides.
    assert truncated[0].score == truncated[1].score
    assert truncated[0].index == 0
    assert all(r.span is None for r in truncated)

    windowed = scorer(tiny_bert, "window").rank(QUERY, candidates)
    assert windowed[0].index == 1
    assert windowed[0].score > windowed[1].score
    start, end = windowed[0].span
    assert ANSWER in LONG[start:end]
    assert start > len(FILLER) // 2, "the best window is near the end, not the start"


def test_window_ranks_long_passage_first_among_distractors(tiny_bert: Path) -> None:
    candidates = [*DISTRACTORS, LONG]
    windowed = scorer(tiny_bert, "window").rank(QUERY, candidates)
    assert windowed[0].index == len(DISTRACTORS)
    truncated = scorer(tiny_bert, "truncate").score(QUERY, candidates)
    assert windowed[0].score > truncated[-1], "the window scores above the cut passage"


def test_window_span_holds_the_answer_score_of_answer_alone(tiny_bert: Path) -> None:
    """The best window is the answer with at most its neighbours; it scores like the answer."""
    windowing = scorer(tiny_bert, "window")
    (best,) = windowing.rank(QUERY, [LONG])
    alone = windowing.score(QUERY, [LONG[best.span[0] : best.span[1]]])
    assert best.score == pytest.approx(alone[0], abs=1e-5)


def test_window_mode_equals_truncate_mode_on_short_passages(tiny_bert: Path) -> None:
    windowed = scorer(tiny_bert, "window").rank(QUERY, CASE_PASSAGES)
    truncated = scorer(tiny_bert, "truncate").rank(QUERY, CASE_PASSAGES)
    assert [r.index for r in windowed] == [r.index for r in truncated]
    assert [r.score for r in windowed] == pytest.approx([r.score for r in truncated], abs=1e-6)
    assert [r.span for r in windowed] == [(0, len(r.text)) for r in windowed]


def test_window_size_option_caps_the_window(tiny_bert: Path) -> None:
    def passage_tokens(scorer_: CrossEncoderScorer, text: str) -> int:
        query_and_specials = scorer_.count_tokens(QUERY, ["cat"]) - 1
        return scorer_.count_tokens(QUERY, [text]) - query_and_specials

    default = scorer(tiny_bert, "window")
    small = scorer(tiny_bert, "window", window_size=8, window_stride=4)
    (best_default,) = default.rank(QUERY, [LONG])
    (best_small,) = small.rank(QUERY, [LONG])
    assert passage_tokens(default, LONG[slice(*best_default.span)]) > 8
    assert passage_tokens(small, LONG[slice(*best_small.span)]) <= 8
    assert best_small.span[0] >= len(FILLER), "the best small window is inside the answer"


@pytest.mark.integration
def test_langchain_adapter_puts_relevance_span_in_metadata(tiny_bert: Path) -> None:
    from langchain_core.documents import Document

    from rerank_plugins.langchain import CrossEncoderRerank

    options = {"device": "cpu", "max_length": MAX_LENGTH}
    docs = [Document(page_content=FILLER), Document(page_content=LONG)]
    windowed = CrossEncoderRerank(
        model=str(tiny_bert), top_n=1, scorer_options={**options, "long_passages": "window"}
    ).compress_documents(docs, QUERY)
    start, end = windowed[0].metadata["relevance_span"]
    assert windowed[0].page_content == LONG
    assert ANSWER in LONG[start:end]
    truncated = CrossEncoderRerank(
        model=str(tiny_bert), top_n=1, scorer_options=options
    ).compress_documents(docs, QUERY)
    assert "relevance_span" not in truncated[0].metadata


@pytest.mark.integration
def test_llama_index_adapter_puts_relevance_span_in_metadata(tiny_bert: Path) -> None:
    from llama_index.core.schema import NodeWithScore, TextNode

    from rerank_plugins.llama_index import CrossEncoderRerank

    options = {"device": "cpu", "max_length": MAX_LENGTH, "long_passages": "window"}
    nodes = [NodeWithScore(node=TextNode(text=text), score=0.0) for text in (FILLER, LONG)]
    reranker = CrossEncoderRerank(model=str(tiny_bert), top_n=1, scorer_options=options)
    (best,) = reranker.postprocess_nodes(nodes, query_str=QUERY)
    start, end = best.node.metadata["relevance_span"]
    assert best.node.get_content() == LONG
    assert ANSWER in LONG[start:end]
    assert "relevance_span" not in nodes[1].node.metadata, "the caller's node is unchanged"
