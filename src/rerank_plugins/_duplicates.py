"""Finding duplicate documents before scoring, so no pair is scored twice.

Two rules, applied in this order:

* **Exact copies**: equal after :func:`normalize_text` (Unicode NFKC, so full-width and
  half-width forms match, then case-folded, with every run of whitespace made one space).
  The first occurrence is kept: first stages return their best match first, so it is the
  copy the retriever (or the fusion of several) ranked highest.
* **Near-duplicates** (``near_duplicate_threshold`` is not None): the overlapping chunks two
  retrievers or two chunk sizes make of one text. Each normalised text, with its spaces
  removed (splitters differ in the newlines and spaces they leave), becomes its set of
  :data:`SHINGLE` -character substrings (character shingles work for Japanese and Chinese,
  which have no spaces between words). A text is a near-duplicate of another when at least
  ``near_duplicate_threshold`` of its shingles also occur in the other (the *containment* of
  the shorter in the longer: a 500-character chunk inside a 2,000-character chunk counts, two
  neighbouring chunks that share a 100-character overlap do not). The copy with more
  shingles is kept, because it holds (nearly) all of the other's text; on a tie, the first.
  Texts shorter than :data:`NEAR_MIN_CHARS` such characters are only merged as exact
  copies: a short title contained in a long passage is not a duplicate of it.

Which text is compared is the caller's affair: LangChain's ``page_content``, a LlamaIndex
node's text without its metadata. Only the kept copy is scored. Cost: the
shingle sets, plus one set intersection per pair that passes a test on a 32-shingle sample
(which rejects a true near-duplicate with probability under 1e-6), so a hundred documents of
a thousand characters take milliseconds, not seconds.
"""

from __future__ import annotations

import math
import unicodedata
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

SHINGLE = 5
"""Characters per shingle for the near-duplicate rule."""
NEAR_MIN_CHARS = 30
"""Shorter normalised texts are merged only as exact copies."""
_SAMPLE = 32
_MISS_RISK = 1e-6


def normalize_text(text: str) -> str:
    """The text duplicates are compared on: NFKC, case-folded, whitespace runs as one space.

    Example:
        >>> normalize_text("  ＡＢＣ　ﾃｽﾄ  abc ")
        'abc テスト abc'
    """
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


@dataclass(frozen=True, slots=True)
class Duplicates:
    """The outcome of :func:`find_duplicates`.

    Attributes:
        kept: Positions of the documents to score, in input order.
        merged: For each kept position that absorbed others, their positions (ascending).
        exact: How many documents were dropped as exact copies.
        near: How many documents were dropped as near-duplicates.
    """

    kept: list[int]
    merged: dict[int, tuple[int, ...]] = field(default_factory=dict)
    exact: int = 0
    near: int = 0

    @property
    def dropped(self) -> int:
        """Documents dropped as duplicates of a kept one, exact or near."""
        return self.exact + self.near


def find_duplicates(
    texts: Sequence[str], *, near_duplicate_threshold: float | None = None
) -> Duplicates:
    """Group ``texts`` into copies and return which to keep (see the module docstring).

    Args:
        texts: The documents' texts.
        near_duplicate_threshold: Share of the smaller text's shingles that must occur in the
            other, in ``(0, 1]``; None merges exact copies only.
    """
    groups: dict[str, int] = {}
    members: dict[int, list[int]] = {}
    for position, text in enumerate(texts):
        first = groups.setdefault(normalize_text(text), position)
        members.setdefault(first, []).append(position)
    exact = len(texts) - len(members)
    kept = list(members)
    near = 0
    if near_duplicate_threshold is not None:
        kept, near = _merge_near(texts, kept, members, near_duplicate_threshold)
    merged = {
        position: tuple(sorted(p for p in members[position] if p != position))
        for position in kept
        if len(members[position]) > 1
    }
    return Duplicates(kept=kept, merged=merged, exact=exact, near=near)


def _merge_near(
    texts: Sequence[str], kept: list[int], members: dict[int, list[int]], threshold: float
) -> tuple[list[int], int]:
    """Merge near-duplicates among the exact-unique ``kept``; update ``members`` in place."""
    representatives: list[_Shingled] = []
    near = 0
    min_hits = _min_sample_hits(threshold)
    for position in kept:
        current = _Shingled.of(position, normalize_text(texts[position]).replace(" ", ""))
        for slot, other in enumerate(representatives):
            if current.is_near(other, threshold, min_hits):
                winner, loser = (current, other) if current.size > other.size else (other, current)
                members[winner.position] = members.pop(winner.position, []) + members.pop(
                    loser.position
                )
                representatives[slot] = winner
                near += 1
                break
        else:
            representatives.append(current)
    return sorted(r.position for r in representatives), near


@dataclass(frozen=True, slots=True)
class _Shingled:
    position: int
    shingles: frozenset[str]
    sample: tuple[str, ...]
    """The shingles with the smallest CRC32 (a stable sample for a cheap first test)."""

    @classmethod
    def of(cls, position: int, text: str) -> _Shingled:
        if len(text) < NEAR_MIN_CHARS:
            return cls(position, frozenset(), ())
        shingles = frozenset(text[i : i + SHINGLE] for i in range(len(text) - SHINGLE + 1))
        sample = sorted(shingles, key=lambda s: zlib.crc32(s.encode("utf-8")))[:_SAMPLE]
        return cls(position, shingles, tuple(sample))

    @property
    def size(self) -> int:
        return len(self.shingles)

    def is_near(self, other: _Shingled, threshold: float, min_hits: int) -> bool:
        """Whether the smaller one's shingles lie (at least ``threshold``) in the larger."""
        if not self.shingles or not other.shingles:
            return False
        small, large = (self, other) if self.size <= other.size else (other, self)
        if len(small.sample) == _SAMPLE and sum(s in large.shingles for s in small.sample) < (
            min_hits
        ):
            return False
        return len(small.shingles & large.shingles) >= threshold * small.size


def _min_sample_hits(threshold: float) -> int:
    """Fewest sampled shingles a near-duplicate shows: fewer happens with p < ``_MISS_RISK``.

    A sample of a text whose containment is ``threshold`` holds a hypergeometric number of
    shared shingles; the binomial bound used here is the looser one.
    """
    hits, risk = 0, 0.0
    while True:
        risk += math.comb(_SAMPLE, hits) * threshold**hits * (1 - threshold) ** (_SAMPLE - hits)
        if risk >= _MISS_RISK:
            return hits
        hits += 1
