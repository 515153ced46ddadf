"""The selection rules of rerank_plugins._context: threshold, budget, top_n, order, report."""

from __future__ import annotations

import asyncio
import logging

import pytest

from rerank_plugins._context import ContextOptions, ContextReport, long_context_order
from rerank_plugins._results import RankResult, select_top

# text -> (score, tokens); tokens are counted as words, so each text has that many words.
DOCS = {
    "a": (0.9, 4),
    "b": (0.8, 6),
    "c": (0.7, 3),
    "d": (0.6, 1),
}


def text(name: str) -> str:
    return " ".join([name] * DOCS[name][1])


TEXTS = [text(name) for name in DOCS]
SCORES = {text(name): score for name, (score, _) in DOCS.items()}


def words(value: str) -> int:
    return len(value.split())


class Ranker:
    """A fake scorer: fixed scores per text; records what it was asked to score."""

    def __init__(self, scores: dict[str, float]) -> None:
        self.scores = scores
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> list[RankResult]:
        self.calls.append(list(texts))
        return select_top([self.scores[t] for t in texts], texts, None, None)


def select(**options: object) -> tuple[list[str], ContextReport]:
    context = ContextOptions.create(length_function=words, **options)  # type: ignore[arg-type]
    selection = context.rank(TEXTS, Ranker(SCORES))
    return [TEXTS[r.index].split()[0] for r in selection.results], selection.report


def test_budget_skips_a_document_that_does_not_fit_and_keeps_filling() -> None:
    kept, report = select(max_context_tokens=8)
    assert kept == ["a", "c", "d"]  # b (6) does not fit after a (4); c and d do
    assert (report.tokens, report.over_budget, report.kept) == (8, 1, 3)


def test_first_document_larger_than_the_whole_budget_is_skipped() -> None:
    kept, report = select(max_context_tokens=3)
    assert kept == ["c"]  # a (4) and b (6) alone exceed 3; c (3) fits exactly, then d does not
    assert (report.tokens, report.over_budget) == (3, 3)


def test_budget_smaller_than_every_document_keeps_nothing() -> None:
    kept, report = select(max_context_tokens=1, score_threshold=0.65)
    assert kept == []
    assert (report.tokens, report.over_budget, report.below_threshold) == (0, 3, 1)


@pytest.mark.parametrize(
    ("budget", "expected"),
    [(14, ["a", "b", "c", "d"]), (13, ["a", "b", "c"]), (10, ["a", "b"])],
    ids=["exact-fit-all", "one-short", "exact-fit-two"],
)
def test_exact_fit(budget: int, expected: list[str]) -> None:
    kept, report = select(max_context_tokens=budget)
    assert kept == expected
    assert report.tokens == sum(DOCS[name][1] for name in expected)
    assert report.tokens <= budget


@pytest.mark.parametrize("budget", [0, -5, True, 2.5, "100"], ids=repr)
def test_budget_must_be_a_positive_int(budget: object) -> None:
    message = r"^max_context_tokens must be a positive int or None, got"
    with pytest.raises(ValueError, match=message):
        ContextOptions.create(max_context_tokens=budget, length_function=words)  # type: ignore[arg-type]


def test_top_n_still_caps_the_count_under_a_budget() -> None:
    kept, report = select(max_context_tokens=100, top_n=2)
    assert kept == ["a", "b"]
    assert (report.over_top_n, report.over_budget) == (2, 0)


def test_threshold_comes_before_the_budget() -> None:
    """A document below score_threshold never takes budget from the ones after it."""
    kept, report = select(max_context_tokens=7, score_threshold=0.65)
    assert kept == ["a", "c"]
    assert (report.below_threshold, report.over_budget) == (1, 1)


def test_results_carry_token_counts_and_keep_their_scores() -> None:
    context = ContextOptions.create(max_context_tokens=8, length_function=words)
    results = context.rank(TEXTS, Ranker(SCORES)).results
    assert [(r.tokens, r.score, r.text) for r in results] == [
        (4, 0.9, TEXTS[0]),
        (3, 0.7, TEXTS[2]),
        (1, 0.6, TEXTS[3]),
    ]


def test_without_budget_or_counter_nothing_is_counted() -> None:
    counted: list[str] = []

    def spy(value: str) -> int:
        counted.append(value)
        return 1

    context = ContextOptions.create(default_length_function=spy, top_n=2)
    selection = context.rank(TEXTS, Ranker(SCORES))
    assert counted == []
    assert selection.report.tokens is None
    assert all(r.tokens is None for r in selection.results)


def test_budget_without_any_counter_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"^max_context_tokens needs a token counter: pass length"):
        ContextOptions.create(max_context_tokens=10)


@pytest.mark.parametrize("bad", [2.0, -1, None, True], ids=repr)
def test_counter_must_return_a_non_negative_int(bad: object) -> None:
    context = ContextOptions.create(max_context_tokens=10, length_function=lambda _: bad)  # type: ignore[arg-type,return-value]
    with pytest.raises(TypeError, match=r"^The token counter must return an int >= 0, got .* 0\.$"):
        context.rank(TEXTS, Ranker(SCORES))


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        ({"order": "reversed"}, ValueError, "order must be 'relevance' or 'long_context', got "),
        ({"deduplicate": 1}, TypeError, "deduplicate must be True or False, got 1."),
        ({"near_duplicate_threshold": 0}, ValueError, "near_duplicate_threshold must be in"),
        ({"near_duplicate_threshold": 1.5}, ValueError, "near_duplicate_threshold must be in"),
        ({"near_duplicate_threshold": "0.9"}, TypeError, "near_duplicate_threshold must be a"),
        ({"top_n": 0}, ValueError, "top_n must be a positive int or None, got 0."),
        ({"length_function": 42}, TypeError, "length_function must be a callable"),
    ],
    ids=["order", "dedupe-type", "threshold-0", "threshold-1.5", "threshold-str", "top-n", "lf"],
)
def test_bad_options(options: dict[str, object], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match="^" + message.replace(".", r"\.").replace("(", r"\(")):
        ContextOptions.create(**options)  # type: ignore[arg-type]


# --- order ---------------------------------------------------------------------------------


def ranked(count: int) -> list[RankResult]:
    return [RankResult(index=i, score=1.0 - i / 100) for i in range(count)]


@pytest.mark.parametrize(
    ("count", "expected"),
    [
        (0, []),
        (1, [0]),
        (2, [0, 1]),
        (3, [0, 2, 1]),
        (4, [0, 2, 3, 1]),
        (5, [0, 2, 4, 3, 1]),
        (6, [0, 2, 4, 5, 3, 1]),
    ],
)
def test_long_context_order_puts_the_best_first_and_the_second_last(
    count: int, expected: list[int]
) -> None:
    assert [r.index for r in long_context_order(ranked(count))] == expected


@pytest.mark.parametrize("count", range(1, 9))
def test_long_context_order_against_llama_index_long_context_reorder(count: int) -> None:
    """Same layout as LlamaIndex's LongContextReorder for odd counts, its mirror for even."""
    from llama_index.core.postprocessor import LongContextReorder
    from llama_index.core.schema import NodeWithScore, TextNode

    nodes = [NodeWithScore(node=TextNode(text=str(r.index)), score=r.score) for r in ranked(count)]
    theirs = [int(n.node.get_content()) for n in LongContextReorder().postprocess_nodes(nodes)]
    ours = [r.index for r in long_context_order(ranked(count))]
    assert ours == (theirs if count % 2 else theirs[::-1])
    assert ours[0] == 0


def test_long_context_order_is_applied_after_selection() -> None:
    kept, _ = select(max_context_tokens=8, order="long_context")
    assert kept == ["a", "d", "c"]  # selected a, c, d; then ranks 1, 3, 2


# --- duplicates, async, report -------------------------------------------------------------


def test_duplicates_are_not_scored_and_are_reported() -> None:
    texts = ["alpha beta", "ALPHA   beta", "gamma", "Ａｌｐｈａ beta", "delta"]
    ranker = Ranker({"alpha beta": 0.5, "gamma": 0.9, "delta": 0.1})
    selection = ContextOptions.create(deduplicate=True).rank(texts, ranker)
    assert ranker.calls == [["alpha beta", "gamma", "delta"]]
    assert [(r.index, r.duplicates) for r in selection.results] == [(2, ()), (0, (1, 3)), (4, ())]
    assert (selection.report.documents, selection.report.duplicates) == (5, 2)


def test_deduplicate_never_drops_a_document_for_scoring_low() -> None:
    texts = [f"document number {i} about a different thing {i * 7}" for i in range(6)]
    ranker = Ranker({t: -10.0 + i for i, t in enumerate(texts)})
    selection = ContextOptions.create(deduplicate=True).rank(texts, ranker)
    assert sorted(r.index for r in selection.results) == list(range(6))


def test_count_and_compare_texts_are_used_instead_of_the_scored_texts() -> None:
    scored = ["title: x\nshared body", "title: y\nshared body", "other"]
    llm = ["x: shared body", "y: shared body", "other text here"]
    bodies = ["shared body", "shared body", "other"]
    ranker = Ranker({scored[0]: 0.2, scored[2]: 0.9})
    context = ContextOptions.create(deduplicate=True, max_context_tokens=10, length_function=words)
    selection = context.rank(scored, ranker, count_texts=llm, compare_texts=bodies)
    assert ranker.calls == [[scored[0], scored[2]]]
    assert [(r.index, r.tokens) for r in selection.results] == [(2, 3), (0, 3)]


def test_async_rank_equals_sync() -> None:
    async def aranker(texts: list[str]) -> list[RankResult]:
        await asyncio.sleep(0)
        return Ranker(SCORES)(texts)

    context = ContextOptions.create(
        max_context_tokens=8, length_function=words, order="long_context"
    )
    sync = context.rank(TEXTS, Ranker(SCORES))
    asynchronous = asyncio.run(context.arank(TEXTS, aranker))
    assert sync == asynchronous


def test_empty_input_is_not_scored() -> None:
    ranker = Ranker({})
    selection = ContextOptions.create(deduplicate=True).rank([], ranker)
    assert (selection.results, ranker.calls, selection.report.documents) == ([], [], 0)


def test_report_is_logged_as_one_line(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="rerank_plugins.context"):
        _, report = select(max_context_tokens=8)
    assert [r.getMessage() for r in caplog.records] == [
        "Context: kept 3 of 4 documents, 8 of 8 tokens; dropped 1 over the token budget, "
        "0 duplicates (0 near), 0 below score_threshold, 0 over top_n"
    ]
    assert report.as_dict() == {
        "documents": 4,
        "duplicates": 0,
        "near_duplicates": 0,
        "below_threshold": 0,
        "over_budget": 1,
        "over_top_n": 0,
        "kept": 3,
        "tokens": 8,
        "max_context_tokens": 8,
    }


def test_plain_options_do_not_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="rerank_plugins.context"):
        select(top_n=2)
    assert caplog.records == []
