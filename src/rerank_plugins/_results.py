"""The result type and the scorer interface shared by every backend and adapter."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True, slots=True)
class RankResult:
    """One ranked passage: its position in the input, its score and (optionally) its text."""

    index: int
    score: float
    text: str | None = None
    span: tuple[int, int] | None = None
    """Character span of the best-scoring window (``long_passages="window"``), else None."""
    tokens: int | None = None
    """The passage's token count when a context budget or token counter was used, else None."""
    duplicates: tuple[int, ...] = ()
    """Input positions of the copies merged into this passage (``deduplicate=True``)."""


@runtime_checkable
class Scorer(Protocol):
    """What the adapters need: a local (CrossEncoderScorer) or remote (RemoteScorer) scorer."""

    model: str

    def rank(
        self,
        query: str,
        passages: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
    ) -> list[RankResult]:
        """Return passages best first."""
        ...

    async def arank(
        self,
        query: str,
        passages: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
    ) -> list[RankResult]:
        """Async :meth:`rank`."""
        ...


def select_top(
    scores: Sequence[float],
    passages: Sequence[str],
    top_n: int | None,
    score_threshold: float | None,
    *,
    spans: Sequence[tuple[int, int] | None] | None = None,
) -> list[RankResult]:
    """Sort best first (ties keep input order), drop scores below the threshold, keep ``top_n``.

    The threshold and ``top_n`` commute on a sorted list, so the result is the same in
    either order: at most ``top_n`` passages, all scoring at least ``score_threshold``.
    """
    order = sorted(range(len(scores)), key=lambda i: -scores[i])
    results = [
        RankResult(index=i, score=scores[i], text=passages[i], span=spans[i] if spans else None)
        for i in order
        if score_threshold is None or scores[i] >= score_threshold
    ]
    return results if top_n is None else results[:top_n]


def check_selection(top_n: object, score_threshold: object) -> None:
    """Validate ``top_n`` (a positive int or None) and ``score_threshold`` (a finite number).

    A NaN threshold would compare false with every score and silently return nothing, and an
    infinite one keeps all or nothing: both are mistakes, so they raise.
    """
    if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1):
        msg = f"top_n must be a positive int or None, got {top_n!r}."
        raise ValueError(msg)
    if score_threshold is not None and (
        not isinstance(score_threshold, (int, float)) or isinstance(score_threshold, bool)
    ):
        msg = f"score_threshold must be a number or None, got {score_threshold!r}."
        raise TypeError(msg)
    if score_threshold is not None and not math.isfinite(score_threshold):
        msg = (
            f"score_threshold must be a finite number or None, got {score_threshold!r}. "
            "Pass None to keep every passage."
        )
        raise ValueError(msg)


def check_inputs(query: object, passages: object) -> list[str]:
    """Validate a query and its passages (local and remote alike); return the passages."""
    if not isinstance(query, str):
        msg = f"query must be a str, got {type(query).__name__}: {_preview(query)}."
        raise ValueError(msg)
    if not query.strip():
        msg = f"query must be a non-empty string, got {query!r}."
        raise ValueError(msg)
    check_encodable("query", query)
    if isinstance(passages, (str, bytes)) or not isinstance(passages, Sequence):
        msg = f"passages must be a list of strings, got {type(passages).__name__}."
        raise TypeError(msg)
    for index, passage in enumerate(passages):
        if not isinstance(passage, str):
            msg = (
                f"passages[{index}] must be a str, got {type(passage).__name__}: "
                f"{_preview(passage)}. Convert documents to text before scoring."
            )
            raise TypeError(msg)
        check_encodable(f"passages[{index}]", passage)
    return list(passages)


def lone_surrogate_message(text: str) -> str | None:
    r"""Describe the first lone surrogate in ``text``, or return None when there is none.

    A lone surrogate (``"\ud83d"``: half of an emoji cut by slicing UTF-16 data, or a byte
    kept by ``errors="surrogateescape"``) is not text any tokenizer or UTF-8 writer accepts.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        return (
            f"contains a lone surrogate {text[err.start]!r} at character {err.start}, which is "
            "not valid Unicode text (often half of an emoji cut by slicing). Repair the text "
            "first, e.g. text.encode('utf-16', 'surrogatepass').decode('utf-16', 'replace')"
        )
    return None


def check_encodable(name: str, text: str) -> None:
    """Raise ValueError naming ``name`` when ``text`` has a lone surrogate."""
    problem = lone_surrogate_message(text)
    if problem is not None:
        msg = f"{name} {problem}."
        raise ValueError(msg)


def _preview(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
