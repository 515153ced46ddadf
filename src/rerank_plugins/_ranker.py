"""``rank`` and ``arank`` with the context options, written once for every scorer.

The local :class:`~rerank_plugins.CrossEncoderScorer` and the
:class:`~rerank_plugins.RemoteScorer` differ only in how they rank all passages; the
options (``top_n``, threshold, budget, duplicates, order) go through
:class:`~rerank_plugins._context.ContextOptions` the same way for both.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from collections.abc import Sequence

from rerank_plugins._context import DEFAULT_NEAR_DUPLICATE_THRESHOLD, ContextOptions, Order
from rerank_plugins._results import RankResult, check_inputs
from rerank_plugins._tokens import LengthFunction

__all__ = ["ContextRanker"]


class ContextRanker(ABC):
    """``rank`` and ``arank`` with the context options, for a scorer that ranks all passages.

    Written once for the local and the remote scorer: a subclass ranks every (checked)
    passage best first (``_rank_all``/``_arank_all``) and may count tokens for
    ``max_context_tokens`` when no ``length_function`` is given (``_default_length_function``).
    """

    def _default_length_function(self) -> LengthFunction | None:
        """The token counter of a budget without ``length_function`` (None: one is needed)."""
        return None

    @abstractmethod
    def _rank_all(self, query: str, passages: list[str]) -> list[RankResult]:
        """Every passage (already checked), best first."""

    @abstractmethod
    async def _arank_all(self, query: str, passages: list[str]) -> list[RankResult]:
        """Async :meth:`_rank_all`."""

    def rank(
        self,
        query: str,
        passages: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        max_context_tokens: int | None = None,
        length_function: LengthFunction | str | None = None,
        deduplicate: bool = False,
        near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
        order: Order = "relevance",
    ) -> list[RankResult]:
        """Return passages best first, as :class:`RankResult` (ties keep input order).

        ``deduplicate`` drops copies before scoring, ``max_context_tokens`` keeps the best
        passages whose tokens fit the budget (counted with ``length_function``; the local
        scorer defaults to its own tokenizer, a remote one has none and needs it), and
        ``order="long_context"`` puts the best first and last; see :mod:`rerank_plugins._context`
        for the rules.
        """
        context = self._context_options(
            top_n,
            score_threshold,
            max_context_tokens,
            length_function,
            deduplicate,
            near_duplicate_threshold,
            order,
        )
        checked = check_inputs(query, passages)
        return context.rank(checked, functools.partial(self._rank_all, query)).results

    async def arank(
        self,
        query: str,
        passages: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        max_context_tokens: int | None = None,
        length_function: LengthFunction | str | None = None,
        deduplicate: bool = False,
        near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
        order: Order = "relevance",
    ) -> list[RankResult]:
        """Async :meth:`rank`."""
        context = self._context_options(
            top_n,
            score_threshold,
            max_context_tokens,
            length_function,
            deduplicate,
            near_duplicate_threshold,
            order,
        )
        checked = check_inputs(query, passages)
        selection = await context.arank(checked, functools.partial(self._arank_all, query))
        return selection.results

    def _context_options(
        self,
        top_n: int | None,
        score_threshold: float | None,
        max_context_tokens: int | None,
        length_function: LengthFunction | str | None,
        deduplicate: bool,
        near_duplicate_threshold: float | None,
        order: Order,
    ) -> ContextOptions:
        return ContextOptions.create(
            top_n=top_n,
            score_threshold=score_threshold,
            max_context_tokens=max_context_tokens,
            length_function=length_function,
            default_length_function=self._default_length_function(),
            deduplicate=deduplicate,
            near_duplicate_threshold=near_duplicate_threshold,
            order=order,
        )
