"""Windows are slices of the passage's own tokens: they fit exactly and spans are exact.

Regression (issue 11, item 4): window mode re-tokenized each window's text. With
sentencepiece a window could come out one token longer than the room (up to five with the
MeCab estimate), be truncated silently, and its ``relevance_span`` then covered text the
model did not read; a passage that was one huge sentence was cut mid-word.
"""

from __future__ import annotations

import itertools
import random
from pathlib import Path
from typing import Any

import pytest
from transformers import AutoTokenizer

from rerank_plugins import CrossEncoderScorer
from rerank_plugins.scorer._windows import Window, pair_builder, passage_windows
from tests._tiny_models import ALL_PASSAGES

WORDS = sorted({w for p in ALL_PASSAGES if p.isascii() for w in p.split()})
KANA = (
    "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
)
KANJI = "猫犬山川火水木金土日月年時人大小中上下東京都寿司富士新幹線噴火"
EMOJI = ["😀", "🍣", "🗻", "🐈", "👩‍👩‍👧", "🇯🇵", "❤️"]
ENDS = [". ", "! ", "? ", "。", "！", "？", "\n", " "]


def random_text(rng: random.Random) -> str:
    """English, Japanese without spaces, emoji, or one sentence with no end at all."""
    kind = rng.choice(["en", "ja", "emoji", "mixed", "one-sentence-en", "one-sentence-ja"])
    if kind == "one-sentence-en":
        return " ".join(rng.choice(WORDS).strip(".,") for _ in range(rng.randint(40, 400)))
    if kind == "one-sentence-ja":
        return "".join(rng.choice(KANA + KANJI) for _ in range(rng.randint(60, 600)))
    parts = []
    for _ in range(rng.randint(1, 30)):
        if kind == "en" or (kind == "mixed" and rng.random() < 0.4):
            sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 25)))
        elif kind == "ja" or kind == "mixed":
            sentence = "".join(rng.choice(KANA + KANJI) for _ in range(rng.randint(1, 40)))
        else:
            sentence = "".join(
                rng.choice(EMOJI) if rng.random() < 0.3 else rng.choice(KANA + "abc ")
                for _ in range(rng.randint(1, 30))
            )
        parts.append(sentence + rng.choice(ENDS))
    return "".join(parts)


def check_exact(text: str, ids: list[int], offsets: list[Any], windows: list[Window], size: int):
    """Each window: at most ``size`` tokens, exactly the tokens inside its span; all covered."""
    assert windows[0].start == 0
    assert windows[-1].end == len(text)
    assert windows[0].first == 0
    assert windows[-1].last == len(ids)
    for a, b in itertools.pairwise(windows):
        assert b.start <= a.end, "windows leave no gap"
        assert b.first <= a.last, "no token is skipped"
        assert b.start > a.start
    for window in windows:
        assert 0 < window.last - window.first <= size
        for k, (begin, end) in enumerate(offsets):
            if begin == end:
                continue  # a token with no characters (none of the text's)
            inside = window.start <= begin and end <= window.end
            assert inside == (window.first <= k < window.last), (
                f"token {k} {text[begin:end]!r} at {begin}-{end}, window {window}"
            )


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_xlmr"])
def test_windows_hold_exactly_the_tokens_of_their_spans(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    """Seeded property test over random English, Japanese, emoji and one-sentence texts."""
    tokenizer = AutoTokenizer.from_pretrained(str(request.getfixturevalue(fixture)))
    rng = random.Random(11)
    for _ in range(150):
        text = random_text(rng)
        size = rng.choice([3, 8, 17, 40])
        encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        ((ids, windows),) = passage_windows(tokenizer, [text], size=size, stride=size // 2 or 1)
        assert ids == encoded["input_ids"]
        check_exact(text, ids, encoded["offset_mapping"], windows, size)


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_xlmr"])
def test_every_scored_row_fits_max_length(fixture: str, request: pytest.FixtureRequest) -> None:
    """Rows are built from token slices, so none passes max_length and none is truncated."""
    path = request.getfixturevalue(fixture)
    scorer = CrossEncoderScorer(str(path), device="cpu", max_length=32, long_passages="window")
    tokenizer = AutoTokenizer.from_pretrained(str(path))
    build = pair_builder(tokenizer)
    rng = random.Random(5)
    passages = [random_text(rng) for _ in range(40)]
    query = "why do cats sleep so much"
    encoded = scorer._encode(tokenizer, query, passages)
    query_ids = tokenizer(query, add_special_tokens=False)["input_ids"]
    room = 32 - len(query_ids) - tokenizer.num_special_tokens_to_add(pair=True)
    windowed = passage_windows(tokenizer, passages, size=room, stride=room // 2)
    expected = [build(query_ids, ids[w.first : w.last])[0] for ids, ws in windowed for w in ws]
    assert encoded.ids == expected
    assert max(len(row) for row in encoded.ids) <= 32
    assert sum(len(row) == 32 for row in encoded.ids) > 10, "most windows fill the room"


def test_pair_layout_equals_the_tokenizers_own_pairs(tiny_bert: Path, tiny_xlmr: Path) -> None:
    """The post-processor's layout ([CLS] A [SEP] B [SEP], <s> A </s></s> B </s>) and types."""
    for path in (tiny_bert, tiny_xlmr):
        tokenizer = AutoTokenizer.from_pretrained(str(path))
        build = pair_builder(tokenizer)
        for query, passage in [
            ("how long do cats sleep", "A cat sleeps. 猫は眠ります。"),
            ("", ""),
        ]:
            ids = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in (query, passage)]
            # The batch form, as the scorer calls it (a lone "" pair is not a pair there).
            pair = tokenizer([query], [passage], return_token_type_ids=True)
            assert build(*ids) == (pair["input_ids"][0], pair["token_type_ids"][0])


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_xlmr"])
def test_one_huge_sentence_is_cut_between_words(
    fixture: str, request: pytest.FixtureRequest
) -> None:
    """A passage that is one sentence without punctuation is no longer cut mid-word."""
    tokenizer = AutoTokenizer.from_pretrained(str(request.getfixturevalue(fixture)))
    rng = random.Random(3)
    text = " ".join(rng.choice(WORDS).strip(".,") for _ in range(600))
    ((_, windows),) = passage_windows(tokenizer, [text], size=20, stride=10)
    assert len(windows) > 20
    for window in windows:
        assert window.start == 0 or text[window.start - 1] == " ", text[window.start - 5 :][:20]
        assert window.end == len(text) or text[window.end - 1] == " " or text[window.end] == " "
