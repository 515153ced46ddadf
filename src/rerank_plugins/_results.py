"""The result type and the scorer interface shared by every backend and adapter."""

from __future__ import annotations

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
    if top_n is not None and (not isinstance(top_n, int) or isinstance(top_n, bool) or top_n < 1):
        msg = f"top_n must be a positive int or None, got {top_n!r}."
        raise ValueError(msg)
    if score_threshold is not None and (
        not isinstance(score_threshold, (int, float)) or isinstance(score_threshold, bool)
    ):
        msg = f"score_threshold must be a number or None, got {score_threshold!r}."
        raise TypeError(msg)


def check_inputs(query: object, passages: object) -> list[str]:
    """Validate a query and its passages (local and remote alike); return the passages."""
    if not isinstance(query, str):
        msg = f"query must be a str, got {type(query).__name__}: {_preview(query)}."
        raise ValueError(msg)
    if not query.strip():
        msg = f"query must be a non-empty string, got {query!r}."
        raise ValueError(msg)
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
    return list(passages)


def _preview(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
