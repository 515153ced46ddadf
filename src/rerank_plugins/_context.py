"""Choosing what reaches an LLM's context: duplicates, a token budget, ``top_n`` and order.

Framework-free; ``CrossEncoderScorer.rank``, ``RemoteScorer.rank`` and both adapters use it.
A call goes through these steps, in this order:

1. **Duplicates** (``deduplicate=True``), *before scoring*, so no pair is scored twice: exact
   copies of the normalised text and, unless ``near_duplicate_threshold`` is None,
   near-duplicates (see :mod:`rerank_plugins._duplicates`). A kept document lists the
   positions it absorbed in ``RankResult.duplicates``. Nothing is ever dropped for scoring
   low; only for being a copy.
2. **Scoring**, of the kept documents only; best first, ties in input order.
3. ``score_threshold``: documents scoring below it are dropped.
4. ``max_context_tokens`` and ``top_n``: documents are taken in score order while their
   token counts add up to at most the budget. A document that does not fit is **skipped and
   filling goes on** with the next (smaller) ones; ``top_n`` stops the filling once that
   many are taken. Skipping rather than stopping at the first misfit: the kept set is then
   a superset of what stopping keeps, so a gold passage is never lost by it; and one long
   document near the top (a first document larger than the whole budget, say) does not
   empty the context. The price: a kept document can score lower than a skipped one, which
   could not have fitted anyway. ``benchmarks/context_budget.py`` measures both rules.
5. **Order**: ``"relevance"`` (best first) or ``"long_context"``: best at the start and
   the end, weakest in the middle ("lost in the middle", Liu et al., 2023). Ranks go
   ``1, 3, 5, ..., 6, 4, 2``: odd ranks from the front, even ranks from the back, so the best
   is always first and the second best always last. LangChain's and LlamaIndex's
   ``LongContextReorder`` give the same layout for an odd count, but for an even count the
   mirror image (the best last, the second best first), because they fill from the weakest.

Tokens are counted only when a budget is set or a counter is given; see
:mod:`rerank_plugins._tokens` for counters. Each call logs one INFO line with its
:class:`ContextReport` on the ``rerank_plugins.context`` logger when duplicates or a budget
are in play.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from rerank_plugins._duplicates import Duplicates, find_duplicates
from rerank_plugins._results import RankResult, check_selection
from rerank_plugins._tokens import LengthFunction
from rerank_plugins._tokens import length_function as resolve_length_function

logger = logging.getLogger("rerank_plugins.context")

Order = Literal["relevance", "long_context"]
ORDERS: tuple[Order, ...] = ("relevance", "long_context")
DEFAULT_NEAR_DUPLICATE_THRESHOLD = 0.9

Ranker = Callable[[list[str]], list[RankResult]]
AsyncRanker = Callable[[list[str]], Awaitable[list[RankResult]]]


@dataclass(frozen=True, slots=True)
class ContextReport:
    """What one selection did, for logs, LlamaIndex events and LangChain callbacks.

    Attributes:
        documents: Documents given.
        duplicates: Dropped before scoring as copies of a kept document (exact or near).
        near_duplicates: How many of ``duplicates`` were near-duplicates.
        below_threshold: Dropped for scoring below ``score_threshold``.
        over_budget: Dropped because they did not fit ``max_context_tokens``.
        over_top_n: Not taken because ``top_n`` documents already were.
        kept: Documents returned.
        tokens: Tokens of the returned documents; None when nothing was counted.
        max_context_tokens: The budget; None when there was none.
    """

    documents: int
    duplicates: int
    near_duplicates: int
    below_threshold: int
    over_budget: int
    over_top_n: int
    kept: int
    tokens: int | None
    max_context_tokens: int | None

    def as_dict(self) -> dict[str, int | None]:
        """The fields as a plain dict (for callback payloads and JSON)."""
        return dataclasses.asdict(self)

    def __str__(self) -> str:
        budget = "" if self.max_context_tokens is None else f" of {self.max_context_tokens:,}"
        tokens = "" if self.tokens is None else f", {self.tokens:,}{budget} tokens"
        return (
            f"kept {self.kept} of {self.documents} documents{tokens}; dropped "
            f"{self.over_budget} over the token budget, {self.duplicates} duplicates "
            f"({self.near_duplicates} near), {self.below_threshold} below score_threshold, "
            f"{self.over_top_n} over top_n"
        )


@dataclass(frozen=True, slots=True)
class ContextSelection:
    """The chosen documents (in the requested order) and the report of how."""

    results: list[RankResult]
    report: ContextReport


def check_context(
    max_context_tokens: object,
    deduplicate: object,
    near_duplicate_threshold: object,
    order: object,
) -> None:
    """Validate the context options (the adapters call this when they are built).

    Raises:
        ValueError: A value is out of range or unknown.
        TypeError: ``deduplicate`` is not a bool, or the threshold not a number.
    """
    if max_context_tokens is not None and (
        not isinstance(max_context_tokens, int)
        or isinstance(max_context_tokens, bool)
        or max_context_tokens < 1
    ):
        msg = f"max_context_tokens must be a positive int or None, got {max_context_tokens!r}."
        raise ValueError(msg)
    if not isinstance(deduplicate, bool):
        msg = f"deduplicate must be True or False, got {deduplicate!r}."
        raise TypeError(msg)
    if near_duplicate_threshold is not None:
        if not isinstance(near_duplicate_threshold, (int, float)) or isinstance(
            near_duplicate_threshold, bool
        ):
            msg = (
                f"near_duplicate_threshold must be a number in (0, 1] or None, "
                f"got {near_duplicate_threshold!r}."
            )
            raise TypeError(msg)
        if not 0 < near_duplicate_threshold <= 1:
            msg = (
                f"near_duplicate_threshold must be in (0, 1] (or None for exact copies only), "
                f"got {near_duplicate_threshold!r}."
            )
            raise ValueError(msg)
    if order not in ORDERS:
        msg = f"order must be 'relevance' or 'long_context', got {order!r}."
        raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class ContextOptions:
    """Validated selection settings; :meth:`rank` runs the whole pipeline.

    Build it with :meth:`create`, which resolves ``length_function`` (a callable, a
    tiktoken encoding name or a Hugging Face tokenizer) against the caller's default.
    """

    top_n: int | None = None
    score_threshold: float | None = None
    max_context_tokens: int | None = None
    length_function: LengthFunction | None = None
    deduplicate: bool = False
    near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD
    order: Order = "relevance"

    @classmethod
    def create(
        cls,
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        max_context_tokens: int | None = None,
        length_function: LengthFunction | str | None = None,
        default_length_function: LengthFunction | None = None,
        deduplicate: bool = False,
        near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
        order: Order = "relevance",
        counter_name: str = "length_function",
    ) -> ContextOptions:
        """Check the options and pick the counter: ``length_function``, else the default.

        The default is used only with a budget; without one and without a default, a
        budget raises ``ValueError`` naming ``counter_name`` (the caller's parameter).
        """
        check_selection(top_n, score_threshold)
        check_context(max_context_tokens, deduplicate, near_duplicate_threshold, order)
        counter: LengthFunction | None = None
        if length_function is not None:
            counter = resolve_length_function(length_function, name=counter_name)
        elif max_context_tokens is not None:
            if default_length_function is None:
                msg = (
                    f"max_context_tokens needs a token counter: pass {counter_name}=... (a "
                    f"callable str -> int, a Hugging Face tokenizer name or path, or a tiktoken "
                    f"encoding name such as 'cl100k_base')."
                )
                raise ValueError(msg)
            counter = default_length_function
        return cls(
            top_n=top_n,
            score_threshold=score_threshold,
            max_context_tokens=max_context_tokens,
            length_function=counter,
            deduplicate=deduplicate,
            near_duplicate_threshold=near_duplicate_threshold,
            order=order,
        )

    def rank(
        self,
        texts: Sequence[str],
        ranker: Ranker,
        *,
        count_texts: Sequence[str] | None = None,
        compare_texts: Sequence[str] | None = None,
    ) -> ContextSelection:
        """Drop duplicates, rank the rest with ``ranker``, then select and order.

        Args:
            texts: What is scored (one per document).
            ranker: Ranks a list of texts best first (``RankResult.index`` into that list),
                with no threshold or cut.
            count_texts: What the LLM will read, for token counts; defaults to ``texts``.
            compare_texts: What duplicates are found on; defaults to ``texts``.
        """
        duplicates = self.find_duplicates(texts if compare_texts is None else compare_texts)
        kept = [texts[i] for i in duplicates.kept]
        ranked = ranker(kept) if kept else []
        return self.select(ranked, texts if count_texts is None else count_texts, duplicates)

    async def arank(
        self,
        texts: Sequence[str],
        ranker: AsyncRanker,
        *,
        count_texts: Sequence[str] | None = None,
        compare_texts: Sequence[str] | None = None,
    ) -> ContextSelection:
        """Async :meth:`rank`."""
        duplicates = self.find_duplicates(texts if compare_texts is None else compare_texts)
        kept = [texts[i] for i in duplicates.kept]
        ranked = await ranker(kept) if kept else []
        return self.select(ranked, texts if count_texts is None else count_texts, duplicates)

    def find_duplicates(self, texts: Sequence[str]) -> Duplicates:
        """The documents to score: all of them, or one per group of copies."""
        if not self.deduplicate:
            return Duplicates(kept=list(range(len(texts))))
        return find_duplicates(texts, near_duplicate_threshold=self.near_duplicate_threshold)

    def select(
        self,
        ranked: Sequence[RankResult],
        texts: Sequence[str],
        duplicates: Duplicates | None = None,
    ) -> ContextSelection:
        """Apply threshold, budget, ``top_n`` and order to ``ranked`` (best first).

        ``ranked[i].index`` points into ``duplicates.kept`` (into ``texts`` when
        ``duplicates`` is None); the results point into ``texts``, which is also what is
        counted.
        """
        kept = duplicates.kept if duplicates is not None else range(len(texts))
        merged = duplicates.merged if duplicates is not None else {}
        counter = self.length_function
        chosen: list[RankResult] = []
        below = over_budget = over_top_n = used = 0
        for result in ranked:
            if self.score_threshold is not None and result.score < self.score_threshold:
                below += 1
                continue
            if self.top_n is not None and len(chosen) == self.top_n:
                over_top_n += 1
                continue
            index = kept[result.index]
            tokens = None if counter is None else _count(counter, texts[index], index)
            if (
                self.max_context_tokens is not None
                and tokens is not None
                and used + tokens > self.max_context_tokens
            ):
                over_budget += 1
                continue
            used += tokens or 0
            chosen.append(
                dataclasses.replace(
                    result, index=index, tokens=tokens, duplicates=merged.get(index, ())
                )
            )
        report = ContextReport(
            documents=len(texts),
            duplicates=duplicates.dropped if duplicates is not None else 0,
            near_duplicates=duplicates.near if duplicates is not None else 0,
            below_threshold=below,
            over_budget=over_budget,
            over_top_n=over_top_n,
            kept=len(chosen),
            tokens=None if counter is None else used,
            max_context_tokens=self.max_context_tokens,
        )
        if self.deduplicate or self.max_context_tokens is not None:
            logger.info("Context: %s", report)
        ordered = long_context_order(chosen) if self.order == "long_context" else chosen
        return ContextSelection(results=ordered, report=report)


def _count(counter: LengthFunction, text: str, index: int) -> int:
    tokens = counter(text)
    if not isinstance(tokens, int) or isinstance(tokens, bool) or tokens < 0:
        msg = f"The token counter must return an int >= 0, got {tokens!r} for document {index}."
        raise TypeError(msg)
    return tokens


def long_context_order(items: Sequence[RankResult]) -> list[RankResult]:
    """Reorder best-first ``items`` as ranks ``1, 3, 5, ..., 6, 4, 2`` (best first and last).

    Example:
        >>> [r.index for r in long_context_order([RankResult(i, 1.0 - i / 10) for i in range(5)])]
        [0, 2, 4, 3, 1]
    """
    return [*items[0::2], *reversed(items[1::2])]
