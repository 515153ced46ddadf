"""Long-passage windows: overlapping, sentence-aligned runs of a passage's own tokens.

A window is a slice of the token ids the passage was tokenized into, never a re-tokenized
piece of text: re-tokenizing a window's text can give more tokens than the slice (a
sentencepiece word cut at the window's start gains a ``▁`` piece), so the model would read
one token past the room, be truncated silently, and the reported span would cover text it
did not read. Each window carries the character span its tokens come from: the span holds
exactly the characters of those tokens (plus whitespace that tokenizes to nothing).

The query and the window are joined by the tokenizer's own special-token layout
(:func:`pair_builder`): the backend post-processor of a fast tokenizer, or
``build_inputs_with_special_tokens`` of a Python one such as the MeCab
``BertJapaneseTokenizer``.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from rerank_plugins._text import split_sentences

# A cut inside a sentence prefers to fall after one of these (or after whitespace).
_SOFT_BREAKS = frozenset("、，,;；:：")

PairBuilder = Callable[[list[int], list[int]], tuple[list[int], list[int]]]


class Window(NamedTuple):
    """Characters ``[start, end)`` of a passage, read as its tokens ``[first, last)``."""

    start: int
    end: int
    first: int
    last: int


class _Unit(NamedTuple):
    """A sentence, or a piece of one: characters ``[start, end)``, tokens ``[first, last)``."""

    start: int
    end: int
    first: int
    last: int


def passage_windows(
    tokenizer: Any, passages: Sequence[str], *, size: int, stride: int
) -> list[tuple[list[int], list[Window]]]:
    """Tokenize each passage once; return its token ids and its windows of ``size`` tokens.

    A fast tokenizer gives the ids and their character offsets in one call. A Python
    tokenizer gives no offsets (transformers 5 leaves ``offset_mapping`` out), so a passage
    longer than a window is tokenized sentence by sentence (a sentence over ``size`` tokens
    in pieces cut between words): its ids are the pieces' ids, each exact for its text.
    """
    if getattr(tokenizer, "is_fast", False):
        encoded = tokenizer(list(passages), add_special_tokens=False, return_offsets_mapping=True)
        return [
            (ids, plan_windows(text, [tuple(o) for o in offsets], size=size, stride=stride))
            for text, ids, offsets in zip(
                passages, encoded["input_ids"], encoded["offset_mapping"], strict=True
            )
        ]
    result = []
    for text in passages:
        ids = _ids(tokenizer, text)
        if len(ids) <= size:
            result.append((ids, [Window(0, len(text), 0, len(ids))]))
            continue
        ids, units = _python_units(tokenizer, text, size)
        result.append((ids, _plan(units, size, stride)))
    return result


def plan_windows(
    text: str, offsets: Sequence[tuple[int, int]], *, size: int, stride: int
) -> list[Window]:
    """Cut ``text``, whose tokens span ``offsets``, into windows of at most ``size`` tokens.

    Windows start and end at sentence boundaries (Japanese 。！？ and English ones); a
    sentence longer than ``size`` is cut between tokens, between words where it can be,
    never inside a character that several tokens share (byte-fallback pieces of an emoji).
    Each window starts at least ``stride`` tokens after the previous one, so consecutive
    windows overlap by about ``size - stride`` tokens. Together they cover the text.
    """
    if len(offsets) <= size:
        return [Window(0, len(text), 0, len(offsets))]
    return _plan(_units(text, offsets, size), size, stride)


def pair_builder(tokenizer: Any) -> PairBuilder:
    """Return ``build(query_ids, passage_ids) -> (input_ids, token_type_ids)`` for a tokenizer.

    transformers 5 fast tokenizers have no ``build_inputs_with_special_tokens``; their layout
    is read once from the backend post-processor (``[CLS] A [SEP] B [SEP]``, ``<s> A </s></s>
    B </s>``, ...), by post-processing two sequences and noting where each one lands.
    """
    if not getattr(tokenizer, "is_fast", False):

        def build_python(query: list[int], passage: list[int]) -> tuple[list[int], list[int]]:
            ids = tokenizer.build_inputs_with_special_tokens(query, passage)
            return ids, tokenizer.create_token_type_ids_from_sequences(query, passage)

        return build_python

    backend = tokenizer.backend_tokenizer
    first = backend.encode("a", add_special_tokens=False)
    second = backend.encode("b", add_special_tokens=False)
    pair = backend.post_process(first, second, add_special_tokens=True)
    # (token id, or None for "sequence k", sequence k, type id) for each slot of the layout.
    # The special-tokens mask, not ``sequence_ids`` (None for the first sequence in some
    # tokenizers releases), tells the sequences' tokens apart; they come in order.
    layout: list[tuple[int | None, int, int]] = []
    lengths = [len(first.ids), len(second.ids)]
    position = 0
    while position < len(pair.ids):
        if pair.special_tokens_mask[position]:
            layout.append((pair.ids[position], -1, pair.type_ids[position]))
            position += 1
            continue
        sequence = sum(1 for slot in layout if slot[0] is None)
        layout.append((None, sequence, pair.type_ids[position]))
        position += lengths[sequence]

    def build_fast(query: list[int], passage: list[int]) -> tuple[list[int], list[int]]:
        ids: list[int] = []
        types: list[int] = []
        for token, sequence, type_id in layout:
            part = [token] if token is not None else query if sequence == 0 else passage
            ids.extend(part)
            types.extend([type_id] * len(part))
        return ids, types

    return build_fast


def _ids(tokenizer: Any, text: str) -> list[int]:
    ids: list[int] = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ids


def _plan(units: list[_Unit], size: int, stride: int) -> list[Window]:
    """Greedy windows over units: fill up to ``size`` tokens, advance by ``stride`` tokens."""
    windows: list[Window] = []
    first = covered = 0
    while True:
        last, tokens = first, 0
        while last < len(units) and tokens + _count(units[last]) <= size:
            tokens += _count(units[last])
            last += 1
        # A window that ends where the previous one ended lies inside it: skip it.
        if last > covered:
            windows.append(
                Window(
                    units[first].start,
                    units[last - 1].end,
                    units[first].first,
                    units[last - 1].last,
                )
            )
            covered = last
        if last == len(units):
            return windows
        advanced, following = 0, first
        while following < last and advanced < stride:
            advanced += _count(units[following])
            following += 1
        first = max(following, first + 1)


def _count(unit: _Unit) -> int:
    return unit.last - unit.first


def _units(text: str, offsets: Sequence[tuple[int, int]], size: int) -> list[_Unit]:
    """Sentences as units of tokens, any over ``size`` tokens cut; they cover the text.

    A token belongs to the sentence its first character is in. A new unit starts only where
    no earlier token reaches past the new token's start, so no character is split between
    two units; a unit's characters run up to the next unit's start.
    """
    starts = [start for start, _ in split_sentences(text)]
    # (token index, character where the unit starts) for each unit.
    cuts: list[tuple[int, int]] = [(0, 0)]
    sentence, reach = 0, 0
    for token, (begin, end) in enumerate(offsets):
        here = bisect.bisect_right(starts, begin) - 1
        if token and here > sentence and begin >= reach:
            cuts.append((token, max(starts[here], reach)))
            sentence = here
        reach = max(reach, end)
    cuts.append((len(offsets), len(text)))
    units: list[_Unit] = []
    for (first, start), (last, end) in itertools.pairwise(cuts):
        units.extend(_cut_sentence(text, offsets, _Unit(start, end, first, last), size))
    return units


def _cut_sentence(
    text: str, offsets: Sequence[tuple[int, int]], unit: _Unit, size: int
) -> list[_Unit]:
    """Cut a unit of over ``size`` tokens between tokens, preferring word boundaries."""
    pieces: list[_Unit] = []
    first, start = unit.first, unit.start
    while unit.last - first > size:
        cut = _best_cut(text, offsets, first, first + size)
        begin = offsets[cut][0]
        pieces.append(_Unit(start, begin, first, cut))
        first, start = cut, begin
    pieces.append(_Unit(start, unit.end, first, unit.last))
    return pieces


def _best_cut(text: str, offsets: Sequence[tuple[int, int]], first: int, limit: int) -> int:
    """The token to start the next piece at: in ``(first, limit]``, latest word boundary first.

    A cut at token ``k`` is valid when no token of the piece reaches past its start (pieces
    of one character, such as an emoji's byte-fallback tokens, stay together). A word
    boundary (whitespace, or a soft break such as ``、`` or ``,``, before the token) in the
    later half wins; else the latest valid cut; else ``limit``.
    """
    word = valid = None
    furthest = offsets[first][1]
    for k in range(first + 1, limit + 1):
        begin = offsets[k][0]
        if begin >= furthest:
            valid = k
            before = text[begin - 1] if begin else ""
            at_word = (
                before.isspace() or before in _SOFT_BREAKS or text[begin : begin + 1].isspace()
            )
            if at_word and 2 * (k - first) >= limit - first:
                word = k
        furthest = max(furthest, offsets[k][1])
    return word or valid or limit


def _python_units(tokenizer: Any, text: str, size: int) -> tuple[list[int], list[_Unit]]:
    """Tokenize ``text`` sentence by sentence (pieces of at most ``size`` tokens each)."""
    ids: list[int] = []
    units: list[_Unit] = []
    for start, end in split_sentences(text):
        for piece_start, piece_end, piece in _python_pieces(tokenizer, text, start, end, size):
            if not piece and units:  # whitespace or dropped characters: join the unit before
                units[-1] = units[-1]._replace(end=piece_end)
                continue
            units.append(_Unit(piece_start, piece_end, len(ids), len(ids) + len(piece)))
            ids.extend(piece)
    return ids, units


def _python_pieces(
    tokenizer: Any, text: str, start: int, end: int, size: int
) -> list[tuple[int, int, list[int]]]:
    """Cut ``text[start:end]`` into pieces whose own tokens number at most ``size``."""
    pieces = []
    while True:
        ids = _ids(tokenizer, text[start:end])
        if len(ids) <= size:
            pieces.append((start, end, ids))
            return pieces
        # The longest prefix that fits (token counts grow with the prefix, near enough),
        # searched within a reach that doubles until it holds more than ``size`` tokens.
        reach = min(end, start + 4 * size)
        while reach < end and len(_ids(tokenizer, text[start:reach])) <= size:
            reach = min(end, start + 2 * (reach - start))
        low, high = start + 1, reach - 1
        while low < high:
            middle = (low + high + 1) // 2
            if len(_ids(tokenizer, text[start:middle])) <= size:
                low = middle
            else:
                high = middle - 1
        cut = low
        for k in range(low, start + (low - start) // 2, -1):
            if text[k - 1].isspace() or text[k - 1] in _SOFT_BREAKS:
                cut = k
                break
        pieces.append((start, cut, _ids(tokenizer, text[start:cut])))
        start = cut
