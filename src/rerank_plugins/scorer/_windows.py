"""Long-passage windows: overlapping, sentence-aligned spans that each fit the model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rerank_plugins._text import split_sentences


def token_offsets(tokenizer: Any, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
    """Return the character span of each token of each text (no special tokens).

    Fast tokenizers report the spans. Python tokenizers, such as the MeCab-based
    ``BertJapaneseTokenizer`` of ``japanese-reranker-cross-encoder-base-v1``, cannot
    (transformers 5 silently leaves ``offset_mapping`` out), so each sentence is tokenized
    on its own and its tokens are spread evenly over its characters: the token count of
    every sentence is exact, and a sentence longer than a window is cut near, not exactly
    at, a token boundary.
    """
    if getattr(tokenizer, "is_fast", False):
        encoded = tokenizer(list(texts), add_special_tokens=False, return_offsets_mapping=True)
        return [list(map(tuple, row)) for row in encoded["offset_mapping"]]
    return [_estimated_offsets(tokenizer, text) for text in texts]


def _estimated_offsets(tokenizer: Any, text: str) -> list[tuple[int, int]]:
    offsets: list[tuple[int, int]] = []
    for start, end in split_sentences(text):
        count = len(tokenizer(text[start:end], add_special_tokens=False)["input_ids"])
        width = end - start
        offsets.extend(
            (start + k * width // count, start + (k + 1) * width // count) for k in range(count)
        )
    return offsets


def plan_windows(
    text: str, offsets: Sequence[tuple[int, int]], *, size: int, stride: int
) -> list[tuple[int, int]]:
    """Cut ``text`` into character spans of at most ``size`` tokens each.

    ``offsets`` are the character spans of the text's tokens. Windows start and end at
    sentence boundaries (Japanese 。！？ and English ones); a sentence longer than ``size``
    is cut at token boundaries. Each window starts at least ``stride`` tokens after the
    previous one, so consecutive windows overlap by about ``size - stride`` tokens.
    """
    if len(offsets) <= size:
        return [(0, len(text))]
    units = _units(text, offsets, size)
    windows: list[tuple[int, int]] = []
    first = covered = 0
    while True:
        last, tokens = first, 0
        while last < len(units) and tokens + units[last][2] <= size:
            tokens += units[last][2]
            last += 1
        # A window that ends where the previous one ended lies inside it: skip it.
        if last > covered:
            windows.append((units[first][0], units[last - 1][1]))
            covered = last
        if last == len(units):
            return windows
        advanced, following = 0, first
        while following < last and advanced < stride:
            advanced += units[following][2]
            following += 1
        first = max(following, first + 1)


def _units(text: str, offsets: Sequence[tuple[int, int]], size: int) -> list[tuple[int, int, int]]:
    """Sentences as (start, end, tokens), with any sentence over ``size`` tokens cut up."""
    units: list[tuple[int, int, int]] = []
    token = 0
    for start, end in split_sentences(text):
        first = token
        while token < len(offsets) and offsets[token][0] < end:
            token += 1
        count = token - first
        if count == 0:
            if units:
                units[-1] = (units[-1][0], end, units[-1][2])
            continue
        for piece in range(first, token, size):
            piece_end = min(piece + size, token)
            span_start = start if piece == first else offsets[piece][0]
            span_end = end if piece_end == token else offsets[piece_end][0]
            units.append((span_start, span_end, piece_end - piece))
    return units
