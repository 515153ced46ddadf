"""Duplicate detection before scoring: exact (normalised) copies and near-duplicate chunks."""

from __future__ import annotations

import random

import pytest

from rerank_plugins._duplicates import (
    NEAR_MIN_CHARS,
    SHINGLE,
    find_duplicates,
    normalize_text,
)

JA_PASSAGE = (
    "東京は日本の首都であり、世界有数の大都市である。人口は約千四百万人で、"
    "多くの企業の本社が集まっている。江戸時代には江戸と呼ばれていた。"
)
EN_PASSAGE = (
    "A cross-encoder reads the query and the passage together and outputs one relevance "
    "score. It is slower than a bi-encoder but far more accurate, so it is used to rerank "
    "a short list of candidates that a fast first stage retrieved."
)


@pytest.mark.parametrize(
    ("left", "right"),
    [
        ("Hello   World\n", "hello world"),
        ("ＡＢＣ１２３", "abc123"),  # full-width Latin letters and digits
        ("ｶﾀｶﾅのﾃｷｽﾄ", "カタカナのテキスト"),  # half-width katakana
        ("ﾊﾟﾝとｶﾞｽ", "パンとガス"),  # half-width voiced marks compose under NFKC
        ("東京　タワー", "東京 タワー"),  # ideographic space
        ("Straße", "STRASSE"),  # casefold, not lower
    ],
    ids=["whitespace-case", "fullwidth-latin", "halfwidth-kana", "dakuten", "ideo-space", "sz"],
)
def test_normalised_forms_match(left: str, right: str) -> None:
    assert normalize_text(left) == normalize_text(right)
    assert find_duplicates([left, right]).kept == [0]


def test_exact_copies_keep_the_first_occurrence() -> None:
    texts = ["b text", "a text", "B  TEXT", "c text", "b text"]
    duplicates = find_duplicates(texts)
    assert duplicates.kept == [0, 1, 3]
    assert duplicates.merged == {0: (2, 4)}
    assert (duplicates.exact, duplicates.near, duplicates.dropped) == (2, 0, 2)


def test_japanese_full_and_half_width_copies_are_one_document() -> None:
    half = JA_PASSAGE.replace("東京", "ﾄｳｷｮｳ").replace("、", "､")
    full = JA_PASSAGE.replace("東京", "トウキョウ")
    duplicates = find_duplicates([full, "別の文書です。", half])
    assert duplicates.kept == [0, 1]
    assert duplicates.merged == {0: (2,)}


@pytest.mark.parametrize("passage", [EN_PASSAGE, JA_PASSAGE], ids=["en", "ja"])
@pytest.mark.parametrize("chunk_first", [True, False], ids=["chunk-first", "chunk-second"])
def test_a_chunk_inside_a_longer_chunk_is_merged_into_the_longer(
    passage: str, chunk_first: bool
) -> None:
    chunk = passage[len(passage) // 4 : len(passage) * 3 // 4]
    texts = [chunk, passage] if chunk_first else [passage, chunk]
    duplicates = find_duplicates(texts, near_duplicate_threshold=0.9)
    longer = texts.index(passage)
    assert duplicates.kept == [longer]
    assert duplicates.merged == {longer: (1 - longer,)}
    assert (duplicates.exact, duplicates.near) == (0, 1)


def test_near_duplicates_with_different_whitespace_and_width_are_merged() -> None:
    """Two splitters: one keeps newlines and full-width digits, the other does not."""
    left = JA_PASSAGE.replace("。", "。\n") + "１９４３年に東京都となった。"
    right = JA_PASSAGE.replace("、", "、 ") + "1943年に東京都となった。"
    assert find_duplicates([left, right], near_duplicate_threshold=0.9).kept == [0]


def test_neighbouring_chunks_with_a_small_overlap_are_kept() -> None:
    words = EN_PASSAGE.split()
    first, second = " ".join(words[:30]), " ".join(words[24:])
    assert find_duplicates([first, second], near_duplicate_threshold=0.9).kept == [0, 1]


def test_a_short_text_inside_a_passage_is_not_its_duplicate() -> None:
    title = "cross-encoder"
    assert len(title) < NEAR_MIN_CHARS
    assert find_duplicates([title, EN_PASSAGE], near_duplicate_threshold=0.5).kept == [0, 1]


def test_threshold_none_merges_exact_copies_only() -> None:
    chunk = EN_PASSAGE[:120]
    duplicates = find_duplicates([EN_PASSAGE, chunk, EN_PASSAGE.upper()])
    assert duplicates.kept == [0, 1]
    assert (duplicates.exact, duplicates.near) == (1, 0)


def test_merged_groups_chain_into_the_longest_copy() -> None:
    """An exact copy of a chunk follows it when the chunk merges into a longer passage."""
    chunk = EN_PASSAGE[40:160]
    duplicates = find_duplicates([chunk, chunk.upper(), EN_PASSAGE], near_duplicate_threshold=0.9)
    assert duplicates.kept == [2]
    assert duplicates.merged == {2: (0, 1)}
    assert (duplicates.exact, duplicates.near) == (1, 1)


def brute_force_near(a: str, b: str, threshold: float) -> bool:
    """The rule without the sampling shortcut."""
    a, b = normalize_text(a).replace(" ", ""), normalize_text(b).replace(" ", "")
    if min(len(a), len(b)) < NEAR_MIN_CHARS:
        return False
    sa = {a[i : i + SHINGLE] for i in range(len(a) - SHINGLE + 1)}
    sb = {b[i : i + SHINGLE] for i in range(len(b) - SHINGLE + 1)}
    small, large = (sa, sb) if len(sa) <= len(sb) else (sb, sa)
    return len(small & large) >= threshold * len(small)


@pytest.mark.parametrize("threshold", [0.5, 0.8, 0.9, 1.0])
def test_sample_shortcut_agrees_with_the_exact_rule(threshold: float) -> None:
    """Randomised (seeded): edited chunks of random texts, near and far from the threshold."""
    rng = random.Random(1234)
    alphabet = "abcdefghijklmnopqrstuvwxyz あいうえおかきくけこ東京大阪"
    disagreements = []
    for _ in range(300):
        base = "".join(rng.choice(alphabet) for _ in range(rng.randint(40, 400)))
        start = rng.randint(0, len(base) // 2)
        chunk = list(base[start : start + rng.randint(30, len(base))])
        for _ in range(rng.randint(0, 12)):
            chunk[rng.randrange(len(chunk))] = rng.choice(alphabet)
        texts = [base, "".join(chunk)]
        expected = brute_force_near(*texts, threshold)
        if expected != (len(find_duplicates(texts, near_duplicate_threshold=threshold).kept) == 1):
            disagreements.append(texts)
    assert disagreements == []
