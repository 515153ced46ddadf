"""Ranking metrics (nDCG, MRR, MAP, Recall) with trec_eval's definitions; pure Python.

Inputs use the trec_eval / pytrec_eval shapes:

* ``qrels``: ``{qid: {docid: relevance}}`` with integer relevance grades. A grade of
  1 or more is relevant (trec_eval's default ``relevance_level``); 0 and below are not.
* ``run``: ``{qid: {docid: score}}``; a higher score ranks higher.

**Ordering and ties.** A query's documents are ranked as trec_eval ranks them: by score,
descending, and documents with equal scores by docid, descending (byte order of the UTF-8
string, which is code-point order). The rank column of a run file is ignored. This keeps
these numbers equal to ``trec_eval`` on the files written by :mod:`rerank_plugins.eval.trec`.

**Definitions** (``R`` = number of relevant documents of the query in ``qrels``):

* ``ndcg@k`` (trec_eval ``ndcg_cut.k``): DCG@k / ideal DCG@k, where DCG sums ``rel /
  log2(rank + 1)`` over the top ``k`` (the gain is the grade itself, not ``2**rel - 1``)
  and the ideal ranking sorts every judged document of the query by grade.
* ``mrr@k`` (trec_eval ``recip_rank`` on the run cut at ``k``): 1 / rank of the first
  relevant document in the top ``k``; 0 if there is none.
* ``map`` (``map``) and ``map@k`` (``map_cut.k``): the sum of precision at the rank of
  each relevant document retrieved (within the top ``k``), divided by ``R``.
* ``recall@k`` (``recall.k``): relevant documents in the top ``k``, divided by ``R``.

A query with no relevant document scores 0 everywhere (as in trec_eval); :func:`evaluate`
leaves such queries out of the mean and counts them. A query of ``qrels`` absent from the
run scores 0 (trec_eval's ``-c``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "Qrels",
    "Run",
    "evaluate",
    "mean",
    "metric_label",
    "parse_metric",
    "per_query",
    "rank_documents",
    "score_query",
]

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Mapping[str, float]]

_METRICS = ("ndcg", "mrr", "map", "recall")
_METRIC_RE = re.compile(r"(ndcg|mrr|map|recall)(?:@(\d+))?\Z")
_LABELS = {"ndcg": "nDCG", "mrr": "MRR", "map": "MAP", "recall": "Recall"}


def parse_metric(name: str) -> tuple[str, int | None]:
    """Split a metric name such as ``"ndcg@10"`` or ``"map"`` into ``(measure, cutoff)``.

    Raises:
        ValueError: The name is not ``ndcg@k``, ``mrr@k``, ``recall@k``, ``map`` or
            ``map@k`` with ``k >= 1``.
    """
    match = _METRIC_RE.match(name.strip().lower()) if isinstance(name, str) else None
    cutoff = int(match.group(2)) if match and match.group(2) else None
    if match is None or cutoff == 0 or (cutoff is None and match.group(1) != "map"):
        msg = (
            f"Unknown metric {name!r}: use 'ndcg@K', 'mrr@K', 'recall@K', 'map' or 'map@K' "
            "with K >= 1, for example 'ndcg@10'."
        )
        raise ValueError(msg)
    return match.group(1), cutoff


def metric_label(name: str) -> str:
    """Return the display form of a metric name: ``"ndcg@10"`` -> ``"nDCG@10"``."""
    measure, cutoff = parse_metric(name)
    return _LABELS[measure] + ("" if cutoff is None else f"@{cutoff}")


def rank_documents(scores: Mapping[str, float]) -> list[str]:
    """Return the docids of ``scores`` in trec_eval order: score desc, then docid desc.

    Raises:
        ValueError: A score is NaN.
    """
    for docid, score in scores.items():
        if math.isnan(score):
            msg = f"The score of document {docid!r} is NaN; every score must be a number."
            raise ValueError(msg)
    ordered = sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)
    return [docid for docid, _ in ordered]


def score_query(
    judgments: Mapping[str, int], ranking: Sequence[str], metrics: Iterable[str]
) -> dict[str, float]:
    """Compute ``metrics`` for one query.

    Args:
        judgments: The query's ``{docid: relevance}``.
        ranking: Its documents, best first (see :func:`rank_documents`).
        metrics: Metric names such as ``"ndcg@10"``, ``"mrr@10"``, ``"map"``,
            ``"recall@100"``.

    Returns:
        ``{metric: value}`` with values in ``[0, 1]``.
    """
    relevant = {docid for docid, rel in judgments.items() if rel >= 1}
    results: dict[str, float] = {}
    for name in metrics:
        measure, cutoff = parse_metric(name)
        top = ranking if cutoff is None else ranking[:cutoff]
        if not relevant:
            results[name] = 0.0
        elif measure == "ndcg":
            results[name] = _ndcg(judgments, top, cutoff or len(ranking))
        elif measure == "mrr":
            results[name] = next(
                (1.0 / rank for rank, docid in enumerate(top, 1) if docid in relevant), 0.0
            )
        elif measure == "map":
            results[name] = _average_precision(relevant, top)
        else:
            results[name] = sum(docid in relevant for docid in top) / len(relevant)
    return results


def _ndcg(judgments: Mapping[str, int], top: Sequence[str], cutoff: int) -> float:
    dcg = sum(
        judgments.get(docid, 0) / math.log2(rank + 1)
        for rank, docid in enumerate(top, 1)
        if judgments.get(docid, 0) > 0
    )
    ideal_gains = sorted((rel for rel in judgments.values() if rel > 0), reverse=True)
    ideal = sum(rel / math.log2(rank + 1) for rank, rel in enumerate(ideal_gains[:cutoff], 1))
    return dcg / ideal if ideal > 0 else 0.0


def _average_precision(relevant: set[str], top: Sequence[str]) -> float:
    hits = 0
    total = 0.0
    for rank, docid in enumerate(top, 1):
        if docid in relevant:
            hits += 1
            total += hits / rank
    return total / len(relevant)


def per_query(qrels: Qrels, run: Run, metrics: Iterable[str]) -> dict[str, dict[str, float]]:
    """Compute ``metrics`` for every query of ``qrels``: ``{qid: {metric: value}}``.

    Queries of ``run`` that ``qrels`` does not judge are ignored; queries of ``qrels``
    missing from ``run`` score 0.
    """
    names = list(metrics)
    for name in names:
        parse_metric(name)  # fail before any work
    return {
        qid: score_query(judgments, rank_documents(run.get(qid, {})), names)
        for qid, judgments in qrels.items()
    }


def mean(values: Mapping[str, Mapping[str, float]], metrics: Iterable[str]) -> dict[str, float]:
    """Average per-query values (as returned by :func:`per_query`) over their queries.

    Returns 0.0 for every metric when there are no queries.
    """
    names = list(metrics)
    if not values:
        return dict.fromkeys(names, 0.0)
    return {name: math.fsum(row[name] for row in values.values()) / len(values) for name in names}


def evaluate(
    qrels: Qrels, run: Run, metrics: Iterable[str] = ("ndcg@10", "mrr@10", "map", "recall@100")
) -> dict[str, float]:
    """Return the mean of each metric over the queries that have a relevant document.

    Queries of ``qrels`` without any relevant document are left out of the mean (no
    ranking can score on them); trec_eval would count them as 0.
    """
    names = list(metrics)
    judged = {qid: rels for qid, rels in qrels.items() if any(rel >= 1 for rel in rels.values())}
    return mean(per_query(judged, run, names), names)
