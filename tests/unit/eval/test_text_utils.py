"""The sentence splitter and the BM25 tokenizers of rerank_plugins._text."""

from __future__ import annotations

import itertools
import random

import pytest

from rerank_plugins import _text
from rerank_plugins._text import bm25_tokenize, get_tokenizer, resolve_tokenizer, split_sentences
from rerank_plugins.errors import MissingDependencyError


def pieces(text: str) -> list[str]:
    return [text[start:end] for start, end in split_sentences(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "梅雨は雨季の一種である。五月から七月まで続く！本当？",
            ["梅雨は雨季の一種である。", "五月から七月まで続く！", "本当？"],
            id="ja-ends",
        ),
        pytest.param(
            "彼は言った。「はい。そうです。」と答えた。次。",
            ["彼は言った。", "「はい。そうです。」と答えた。", "次。"],
            id="ja-quote-kept-whole",
        ),
        pytest.param(
            "『本当か？』彼は笑った。（注：例。）",
            ["『本当か？』彼は笑った。", "（注：例。）"],
            id="ja-brackets",
        ),
        pytest.param(
            "これは例です。」次の文です。",
            ["これは例です。」", "次の文です。"],
            id="ja-closer-after-end-stays",
        ),
        pytest.param("すごい!!本当?はい", ["すごい!!", "本当?", "はい"], id="ja-ascii-marks"),
        pytest.param(
            "円周率は３．１４です．次です．",
            ["円周率は３．１４です．", "次です．"],
            id="ja-fullwidth-period-not-in-numbers",
        ),
        pytest.param(
            "This is e.g. a test. Dr. Smith paid 3.14 dollars! Really? Yes.",
            ["This is e.g. a test. ", "Dr. Smith paid 3.14 dollars! ", "Really? ", "Yes."],
            id="en-abbreviations-decimals",
        ),
        pytest.param(
            "J. K. Rowling wrote it. The U.S. economy grew. See example.com now.",
            ["J. K. Rowling wrote it. ", "The U.S. economy grew. ", "See example.com now."],
            id="en-initials-urls",
        ),
        pytest.param(
            'He said "Stop." Then he left. It costs approx. three euros.',
            ['He said "Stop." ', "Then he left. ", "It costs approx. three euros."],
            id="en-quotes-lowercase-continuation",
        ),
        pytest.param(
            "Title line\nBody one. Body two.\n\nNext paragraph",
            ["Title line\n", "Body one. ", "Body two.\n\n", "Next paragraph"],
            id="newlines-and-blank-lines",
        ),
        pytest.param(
            "東京は日本の首都です。Tokyo is big. 人口は多い。",
            ["東京は日本の首都です。", "Tokyo is big. ", "人口は多い。"],
            id="mixed",
        ),
        pytest.param(
            "「開いたまま。\n次の行。",
            ["「開いたまま。\n", "次の行。"],
            id="unclosed-bracket-ends-at-line",
        ),
        pytest.param("\n\n  Leading. Trailing.  ", ["\n\n  Leading. ", "Trailing.  "], id="edges"),
        pytest.param("", [], id="empty"),
        pytest.param("   ", ["   "], id="blank"),
    ],
)
def test_split_sentences(text, expected):
    assert pieces(text) == expected


def test_split_sentences_covers_every_character_of_random_text():
    rng = random.Random(7)
    alphabet = list("あア漢字abcXYZ 3.14\n\n\t。！？!?.．」』）「『（\"')e.g.Dr.　")
    for _ in range(400):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
        spans = split_sentences(text)
        assert "".join(text[s:e] for s, e in spans) == text
        assert all(s < e for s, e in spans)
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        if len(spans) > 1:  # no piece is only whitespace
            assert all(text[s:e].strip() for s, e in spans)


def test_split_sentences_rejects_non_str():
    with pytest.raises(TypeError, match=r"^text must be a str, got bytes\.$"):
        split_sentences(b"abc")


def test_whitespace_tokenizer_normalises_and_lowercases():
    assert bm25_tokenize("Hello, ＷＯＲＬＤ! Straße 3.14", tokenizer="whitespace") == [
        "hello",
        "world",
        "strasse",
        "3",
        "14",
    ]
    assert bm25_tokenize("東京都に住む", tokenizer="whitespace") == ["東京都に住む"]


def test_bigram_tokenizer_cuts_cjk_runs_and_keeps_latin_words():
    assert bm25_tokenize("東京都に住む。Python3 ｶﾀｶﾅ 猫", tokenizer="bigram") == [
        *("東京", "京都", "都に", "に住", "住む"),
        "python3",
        *("カタ", "タカ", "カナ"),  # half-width katakana is NFKC-normalised first
        "猫",  # a one-character run stays a unigram
    ]


def test_fugashi_tokenizer_splits_words():
    pytest.importorskip("fugashi")
    if not (_text.is_available("unidic_lite") or _text.is_available("unidic")):
        pytest.skip("no UniDic dictionary installed")
    assert bm25_tokenize("東京都に住んでいます。Hello", tokenizer="fugashi") == [
        *("東京", "都", "に", "住ん", "で", "い", "ます"),
        "hello",
    ]


def test_auto_uses_bigrams_without_fugashi(monkeypatch):
    monkeypatch.setattr(_text, "is_available", lambda module: False)
    assert resolve_tokenizer("auto") == "bigram"
    assert bm25_tokenize("東京都", tokenizer="auto") == ["東京", "京都"]


def test_explicit_fugashi_without_it_names_the_extra(monkeypatch):
    monkeypatch.setattr(_text, "is_available", lambda module: False)
    monkeypatch.setattr("rerank_plugins._optional.is_available", lambda module: False)
    monkeypatch.delattr(_text._local, "tagger", raising=False)
    with pytest.raises(
        MissingDependencyError,
        match=(
            r"^The 'fugashi' BM25 tokenizer needs 'fugashi', which is not installed\. "
            r'Install it with: pip install "rerank-plugins\[ja\]"$'
        ),
    ):
        get_tokenizer("fugashi")


@pytest.mark.parametrize("name", ["mecab", "", "Auto"])
def test_unknown_tokenizer(name):
    with pytest.raises(
        ValueError,
        match=(
            r"^tokenizer must be one of 'auto', 'fugashi', 'bigram', 'whitespace', "
            rf"got {name!r}\.$"
        ),
    ):
        bm25_tokenize("text", tokenizer=name)


def test_dot_before_spaces_and_a_lowercase_word_still_joins() -> None:
    """Regression: ``text[after:].lstrip()`` copied the rest of the text at every ``.``.

    That made the splitter quadratic (1.6M characters took 17 s; see
    ``benchmarks/sentence_splitter.py``); the index scan that replaced it must decide alike.
    """
    text = "It weighs approx.     three kilos. Then it rests. " + "x" * 100 + ". End"
    assert [text[s:e] for s, e in split_sentences(text)] == [
        "It weighs approx.     three kilos. ",
        "Then it rests. " + "x" * 100 + ". ",
        "End",
    ]
