"""Measure a reranker: first-stage candidates, reranked, scored with :mod:`.metrics`."""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from rerank_plugins.eval import metrics as _metrics

if TYPE_CHECKING:
    from rerank_plugins._text import TokenizerName
    from rerank_plugins.eval.datasets import EvalDataset

__all__ = ["EvalReport", "SupportsRank", "evaluate"]

logger = logging.getLogger(__name__)

FirstStage = Literal["bm25", "none"]

_ESTIMATE_AFTER = 5
"""Queries timed before the total time of an evaluation is estimated and logged."""


class _Ranked(Protocol):
    @property
    def index(self) -> int: ...

    @property
    def score(self) -> float: ...


class SupportsRank(Protocol):
    """Anything with the scorer's ``rank(query, passages)`` method."""

    def rank(self, query: str, passages: Sequence[str]) -> Sequence[_Ranked]:
        """Return one result per passage (``.index``, ``.score``), best first."""
        ...


def metric_names(top_k: int) -> tuple[str, ...]:
    """Return the metrics an evaluation reports: nDCG@10, MRR@10, MAP, Recall@1/5/10/top_k."""
    cutoffs = sorted({1, 5, 10, top_k})
    return ("ndcg@10", "mrr@10", "map", *(f"recall@{k}" for k in cutoffs))


@dataclass(frozen=True)
class EvalReport:
    """What :func:`evaluate` measured.

    Attributes:
        dataset: The data set's name.
        model: The scorer's ``model`` (or its class name).
        first_stage: ``"bm25"`` or ``"none"`` (the data set's own candidates).
        bm25_tokenizer: The BM25 tokenizer used (``None`` without BM25).
        top_k: Candidates per query from the first stage.
        num_queries: Queries evaluated.
        num_documents: Documents in the corpus.
        skipped_queries: Queries left out because they have no relevant document.
        metrics: ``{"first_stage": {metric: mean}, "reranked": {metric: mean}}``.
        per_query: ``{"first_stage" | "reranked": {qid: {metric: value}}}``.
        latency: Seconds and milliseconds: ``rerank_p50_ms``, ``rerank_p95_ms``,
            ``rerank_mean_ms`` (per query, one ``rank`` call each), ``rerank_total_s``,
            ``index_s`` (building BM25), ``first_stage_s`` and ``total_s``.
        first_stage_run: ``{qid: {docid: score}}`` of the first stage.
        reranked_run: ``{qid: {docid: score}}`` of the reranker.
        qrels: The judgments of the evaluated queries.
    """

    dataset: str
    model: str
    first_stage: FirstStage
    bm25_tokenizer: str | None
    top_k: int
    num_queries: int
    num_documents: int
    skipped_queries: int
    metrics: dict[str, dict[str, float]]
    per_query: dict[str, dict[str, dict[str, float]]] = field(repr=False)
    latency: dict[str, float]
    first_stage_run: dict[str, dict[str, float]] = field(repr=False)
    reranked_run: dict[str, dict[str, float]] = field(repr=False)
    qrels: dict[str, dict[str, int]] = field(repr=False)

    @property
    def metric_names(self) -> tuple[str, ...]:
        """The metric names, in report order."""
        return tuple(self.metrics["reranked"])

    def to_dict(self, *, per_query: bool = False) -> dict[str, Any]:
        """Return the report as JSON-serialisable data (runs left out; see ``save_runs``)."""
        data: dict[str, Any] = {
            "dataset": self.dataset,
            "model": self.model,
            "first_stage": self.first_stage,
            "bm25_tokenizer": self.bm25_tokenizer,
            "top_k": self.top_k,
            "num_queries": self.num_queries,
            "num_documents": self.num_documents,
            "skipped_queries": self.skipped_queries,
            "metrics": {stage: dict(values) for stage, values in self.metrics.items()},
            "latency": dict(self.latency),
        }
        if per_query:
            data["per_query"] = self.per_query
        return data

    def format_table(self) -> str:
        """Render the report as a plain-text table, one metric per row."""
        stage = "bm25" if self.first_stage == "bm25" else "given"
        tokenizer = f", tokenizer {self.bm25_tokenizer}" if self.bm25_tokenizer else ""
        lat = self.latency
        skipped = (
            f"; {self.skipped_queries} without a relevant document skipped"
            if self.skipped_queries
            else ""
        )
        lines = [
            f"data set:     {self.dataset} ({self.num_queries} queries, "
            f"{self.num_documents} documents{skipped})",
            f"model:        {self.model}",
            f"first stage:  {stage}{tokenizer}, top {self.top_k}",
            "",
            f"{'metric':<12}{stage:>10}{'+rerank':>10}{'delta':>10}",
        ]
        for name in self.metric_names:
            before = self.metrics["first_stage"][name]
            after = self.metrics["reranked"][name]
            label = _metrics.metric_label(name)
            lines.append(f"{label:<12}{before:>10.4f}{after:>10.4f}{after - before:>+10.4f}")
        lines += [
            "",
            f"rerank latency per query: p50 {lat['rerank_p50_ms']:.1f} ms, "
            f"p95 {lat['rerank_p95_ms']:.1f} ms, mean {lat['rerank_mean_ms']:.1f} ms",
            f"time: rerank {lat['rerank_total_s']:.1f} s, first stage {lat['first_stage_s']:.1f} s"
            f" (index {lat['index_s']:.1f} s), total {lat['total_s']:.1f} s",
        ]
        return "\n".join(lines)

    def save_runs(self, directory: str | Path) -> dict[str, Path]:
        """Write ``first_stage.run``, ``reranked.run`` and ``qrels.txt`` into ``directory``.

        Check them with ``trec_eval -c -m ndcg_cut.10 DIR/qrels.txt DIR/reranked.run``.

        Returns:
            ``{"first_stage": path, "reranked": path, "qrels": path}``.
        """
        from rerank_plugins.eval import trec

        root = Path(directory)
        root.mkdir(parents=True, exist_ok=True)
        tag = "bm25" if self.first_stage == "bm25" else "given"
        return {
            "first_stage": trec.write_run(root / "first_stage.run", self.first_stage_run, tag=tag),
            "reranked": trec.write_run(root / "reranked.run", self.reranked_run, tag="rerank"),
            "qrels": trec.write_qrels(root / "qrels.txt", self.qrels),
        }


def evaluate(
    scorer: SupportsRank,
    dataset: EvalDataset,
    *,
    first_stage: FirstStage = "bm25",
    top_k: int = 100,
    limit: int | None = None,
    progress: bool = True,
    bm25_tokenizer: TokenizerName = "auto",
) -> EvalReport:
    """Rerank each query's first-stage candidates with ``scorer`` and measure both rankings.

    For every query with a relevant document (the first ``limit`` of them, in the data
    set's order): take the candidates (BM25's ``top_k`` over the whole corpus, or the
    data set's own list cut to ``top_k``), call ``scorer.rank(query, texts)`` once and
    time it, and score the first-stage and reranked orders with nDCG@10, MRR@10, MAP and
    Recall@1/5/10/``top_k`` (see :mod:`rerank_plugins.eval.metrics`).

    Args:
        scorer: Any object with ``rank(query, passages)`` returning results with
            ``.index`` and ``.score`` (a :class:`~rerank_plugins.CrossEncoderScorer`).
        dataset: What :func:`~rerank_plugins.eval.load_dataset` returns.
        first_stage: ``"bm25"``, or ``"none"`` to use the data set's candidates.
        top_k: Candidates per query.
        limit: Evaluate only this many queries.
        progress: Show a tqdm progress bar on stderr.
        bm25_tokenizer: The BM25 tokenizer (see :func:`rerank_plugins._text.bm25_tokenize`).

    Raises:
        TypeError: ``scorer`` has no ``rank`` method.
        ValueError: A bad argument, ``first_stage="none"`` on a data set without
            candidates, a candidate missing from the corpus, or a scorer result whose
            index is out of range.
    """
    started = time.perf_counter()
    if not callable(getattr(scorer, "rank", None)):
        msg = (
            "scorer must have a rank(query, passages) method, such as the scorer returned "
            f"by rerank_plugins.get_scorer(); got {type(scorer).__name__}."
        )
        raise TypeError(msg)
    check_options(dataset, first_stage=first_stage, top_k=top_k, limit=limit)

    judged = [
        qid
        for qid in dataset.queries
        if any(rel >= 1 for rel in dataset.qrels.get(qid, {}).values())
    ]
    skipped = len(dataset.queries) - len(judged)
    qids = judged if limit is None else judged[:limit]
    docids = list(dataset.corpus)

    index_seconds = 0.0
    index = None
    tokenizer_name: str | None = None
    if first_stage == "bm25":
        from rerank_plugins.eval.bm25 import BM25Index

        tick = time.perf_counter()
        index = BM25Index(list(dataset.corpus.values()), tokenizer=bm25_tokenizer)
        index_seconds = time.perf_counter() - tick
        tokenizer_name = index.tokenizer_name
        logger.info("Built %r in %.2f s.", index, index_seconds)

    first_run: dict[str, dict[str, float]] = {}
    reranked_run: dict[str, dict[str, float]] = {}
    first_stage_seconds = index_seconds
    latencies: list[float] = []
    bar = _progress_bar(len(qids), progress)
    loop_started = time.perf_counter()
    try:
        for done, qid in enumerate(qids, start=1):
            query = dataset.queries[qid]
            tick = time.perf_counter()
            if index is not None:
                hits = index.search(query, top_k)
                candidates = {docids[position]: score for position, score in hits}
            else:
                candidates = _given_candidates(dataset, qid, top_k)
            first_stage_seconds += time.perf_counter() - tick
            first_run[qid] = candidates
            reranked_run[qid] = _rerank(scorer, qid, query, candidates, dataset, latencies)
            if bar is not None:
                bar.update(1)
            if done == _ESTIMATE_AFTER < len(qids):
                _log_estimate(time.perf_counter() - loop_started, done, len(qids), top_k, bar)
    finally:
        if bar is not None:
            bar.close()

    names = metric_names(top_k)
    qrels = {qid: dict(dataset.qrels[qid]) for qid in qids}
    per_query = {
        "first_stage": _metrics.per_query(qrels, first_run, names),
        "reranked": _metrics.per_query(qrels, reranked_run, names),
    }
    return EvalReport(
        dataset=dataset.name,
        model=str(getattr(scorer, "model", type(scorer).__name__)),
        first_stage=first_stage,
        bm25_tokenizer=tokenizer_name,
        top_k=top_k,
        num_queries=len(qids),
        num_documents=len(dataset.corpus),
        skipped_queries=skipped,
        metrics={stage: _metrics.mean(values, names) for stage, values in per_query.items()},
        per_query=per_query,
        latency=_latency(latencies, index_seconds, first_stage_seconds, started),
        first_stage_run=first_run,
        reranked_run=reranked_run,
        qrels=qrels,
    )


def check_options(
    dataset: EvalDataset, *, first_stage: object, top_k: object, limit: object
) -> None:
    """Raise ``ValueError`` on :func:`evaluate` options out of range or unfit for ``dataset``.

    ``evaluate`` calls it first; the CLI calls it before loading a model, to fail fast.
    """
    if first_stage not in ("bm25", "none"):
        msg = f"first_stage must be 'bm25' or 'none', got {first_stage!r}."
        raise ValueError(msg)
    for name, value in (("top_k", top_k), ("limit", 1 if limit is None else limit)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            msg = f"{name} must be a positive int, got {value!r}."
            raise ValueError(msg)
    if first_stage == "none" and dataset.candidates is None:
        msg = (
            f"first_stage='none' needs per-query candidates, and the data set "
            f"{dataset.name!r} has none; use first_stage='bm25'."
        )
        raise ValueError(msg)


def _given_candidates(dataset: EvalDataset, qid: str, top_k: int) -> dict[str, float]:
    """Return the data set's candidates for ``qid``, scored so that their order is kept."""
    given = dict.fromkeys((dataset.candidates or {}).get(qid, []))  # ordered, deduplicated
    kept = list(given)[:top_k]
    for docid in kept:
        if docid not in dataset.corpus:
            msg = (
                f"Query {qid!r} lists candidate {docid!r}, which is not in the corpus of "
                f"{dataset.name!r}; every candidate must be a corpus document."
            )
            raise ValueError(msg)
    return {docid: float(len(kept) - rank) for rank, docid in enumerate(kept)}


def _rerank(
    scorer: SupportsRank,
    qid: str,
    query: str,
    candidates: dict[str, float],
    dataset: EvalDataset,
    latencies: list[float],
) -> dict[str, float]:
    if not candidates:
        return {}
    order = list(candidates)
    texts = [dataset.corpus[docid] for docid in order]
    tick = time.perf_counter()
    results = scorer.rank(query, texts)
    latencies.append(time.perf_counter() - tick)
    scores: dict[str, float] = {}
    for result in results:
        position = result.index
        if isinstance(position, bool) or not isinstance(position, int):
            position = -1
        if not 0 <= position < len(order):
            msg = (
                f"scorer.rank() returned index {result.index!r} for {len(order)} passages "
                f"(query {qid!r}); indices must point into the passages it was given."
            )
            raise ValueError(msg)
        scores[order[position]] = float(result.score)
    return scores


def _log_estimate(elapsed: float, done: int, total: int, top_k: int, bar: Any) -> None:
    """Tell how long the whole evaluation will take at the rate of its first queries.

    Written above the progress bar when there is one, else logged at INFO.
    """
    per_query = elapsed / done
    minutes = per_query * total / 60
    message = (
        f"Estimated time: about {f'{minutes:.1f} min' if minutes >= 1 else f'{minutes * 60:.0f} s'}"
        f" for {total} queries ({per_query:.2f} s per query at top_k={top_k}, measured on the "
        f"first {done}). A smaller top_k or limit gives a quicker run."
    )
    if bar is not None:
        bar.write(message, file=sys.stderr)
    else:
        logger.info(message)


def _percentile(values: Sequence[float], fraction: float) -> float:
    """Linear-interpolation percentile (numpy's default); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def _latency(
    latencies: Sequence[float], index_seconds: float, first_stage_seconds: float, started: float
) -> dict[str, float]:
    mean = math.fsum(latencies) / len(latencies) if latencies else 0.0
    return {
        "rerank_p50_ms": _percentile(latencies, 0.50) * 1000,
        "rerank_p95_ms": _percentile(latencies, 0.95) * 1000,
        "rerank_mean_ms": mean * 1000,
        "rerank_total_s": math.fsum(latencies),
        "index_s": index_seconds,
        "first_stage_s": first_stage_seconds,
        "total_s": time.perf_counter() - started,
    }


def _progress_bar(total: int, enabled: bool) -> Any:
    if not enabled:
        return None
    from rerank_plugins._optional import require

    tqdm = require("tqdm", extra="eval", feature="The evaluation progress bar")
    return tqdm.tqdm(total=total, desc="Reranking", unit="query", dynamic_ncols=True)
