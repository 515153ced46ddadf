"""nDCG/MRR/MAP/Recall: hand-worked cases and agreement with trec_eval (pytrec_eval)."""

from __future__ import annotations

import math
import random

import pytest

from rerank_plugins.eval import metrics

pytrec_eval = pytest.importorskip("pytrec_eval", reason="pytrec_eval-terrier is in the test group")

CUTOFFS = (1, 2, 3, 5, 10, 20)


def _random_case(seed: int) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, float]]]:
    """Graded qrels (with negatives and all-zero queries) and runs full of score ties."""
    rng = random.Random(seed)
    # Ids of different lengths, so that string order differs from numeric order.
    pool = [f"d{i}" for i in range(40)] + ["D", "a-1", "z"]
    qrels: dict[str, dict[str, int]] = {}
    run: dict[str, dict[str, float]] = {}
    for q in range(25):
        qid = f"q{q}"
        judged = rng.sample(pool, rng.randint(1, 15))
        qrels[qid] = {docid: rng.choice([-1, 0, 0, 1, 1, 2, 3]) for docid in judged}
        retrieved = rng.sample(pool, rng.randint(1, len(pool)))
        # Scores from a handful of values: most documents tie with others.
        run[qid] = {docid: rng.choice([0.0, 0.5, 1.0, 1.5, -2.25, 3.0]) for docid in retrieved}
    return qrels, run


def _trec_eval(qrels, run, measures):
    return pytrec_eval.RelevanceEvaluator(qrels, measures).evaluate(run)


@pytest.mark.parametrize("seed", range(8))
def test_agrees_with_trec_eval_on_random_runs_with_ties(seed):
    qrels, run = _random_case(seed)
    cut = ",".join(map(str, CUTOFFS))
    expected = _trec_eval(qrels, run, {f"ndcg_cut.{cut}", f"map_cut.{cut}", f"recall.{cut}", "map"})
    names = ["map"] + [f"{m}@{k}" for m in ("ndcg", "map", "recall") for k in CUTOFFS]
    ours = metrics.per_query(qrels, run, names)
    assert set(ours) == set(expected)
    for qid, values in ours.items():
        assert values["map"] == pytest.approx(expected[qid]["map"], abs=1e-9)
        for k in CUTOFFS:
            for ours_name, trec_name in (
                ("ndcg", "ndcg_cut"),
                ("map", "map_cut"),
                ("recall", "recall"),
            ):
                assert values[f"{ours_name}@{k}"] == pytest.approx(
                    expected[qid][f"{trec_name}_{k}"], abs=1e-9
                ), (qid, ours_name, k)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("k", [1, 3, 10])
def test_mrr_at_k_is_trec_eval_recip_rank_of_the_cut_run(seed, k):
    qrels, run = _random_case(seed)
    cut_run = {
        qid: {docid: scores[docid] for docid in metrics.rank_documents(scores)[:k]}
        for qid, scores in run.items()
    }
    expected = _trec_eval(qrels, cut_run, {"recip_rank"})
    ours = metrics.per_query(qrels, run, [f"mrr@{k}"])
    for qid in qrels:
        assert ours[qid][f"mrr@{k}"] == pytest.approx(expected[qid]["recip_rank"], abs=1e-9)


def test_means_agree_with_trec_eval_when_every_query_has_a_relevant_document():
    qrels, run = _random_case(99)
    qrels = {qid: rels for qid, rels in qrels.items() if any(r >= 1 for r in rels.values())}
    expected = _trec_eval(qrels, run, {"ndcg_cut.10", "map", "recall.5"})
    ours = metrics.evaluate(qrels, run, ["ndcg@10", "map", "recall@5"])
    for ours_name, trec_name in (
        ("ndcg@10", "ndcg_cut_10"),
        ("map", "map"),
        ("recall@5", "recall_5"),
    ):
        mean = math.fsum(row[trec_name] for row in expected.values()) / len(expected)
        assert ours[ours_name] == pytest.approx(mean, abs=1e-9)


def test_ties_are_broken_by_docid_descending():
    """trec_eval orders equal scores by docid, descending; the rank column is ignored."""
    assert metrics.rank_documents({"b": 1.0, "a": 1.0, "c": 1.0, "z": 0.5}) == ["c", "b", "a", "z"]
    # So the same scores give different metrics depending only on the ids.
    qrels = {"q": {"a": 1}}
    assert metrics.per_query(qrels, {"q": {"a": 1.0, "b": 1.0}}, ["mrr@10"])["q"]["mrr@10"] == 0.5
    assert metrics.per_query(qrels, {"q": {"a": 1.0, "0": 1.0}}, ["mrr@10"])["q"]["mrr@10"] == 1.0


def test_hand_worked_graded_example():
    # Ranking: x (rel 0), y (rel 2), z (rel 1); one relevant document (w) never retrieved.
    qrels = {"q": {"x": 0, "y": 2, "z": 1, "w": 3}}
    run = {"q": {"x": 3.0, "y": 2.0, "z": 1.0}}
    values = metrics.per_query(qrels, run, ["ndcg@3", "mrr@10", "map", "map@2", "recall@2"])["q"]
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    ideal = 3 + 2 / math.log2(3) + 1 / math.log2(4)
    assert values["ndcg@3"] == pytest.approx(dcg / ideal)
    assert values["mrr@10"] == pytest.approx(1 / 2)
    assert values["map"] == pytest.approx((1 / 2 + 2 / 3) / 3)
    assert values["map@2"] == pytest.approx((1 / 2) / 3)
    assert values["recall@2"] == pytest.approx(1 / 3)


def test_query_missing_from_run_scores_zero_and_unjudged_queries_are_left_out_of_the_mean():
    qrels = {"hit": {"a": 1}, "missing": {"a": 1}, "no_relevant": {"a": 0}}
    run = {"hit": {"a": 1.0}, "no_relevant": {"a": 1.0}, "extra": {"a": 1.0}}
    per_query = metrics.per_query(qrels, run, ["ndcg@10"])
    assert per_query == {
        "hit": {"ndcg@10": 1.0},
        "missing": {"ndcg@10": 0.0},
        "no_relevant": {"ndcg@10": 0.0},
    }
    assert metrics.evaluate(qrels, run, ["ndcg@10"]) == {"ndcg@10": 0.5}


def test_mean_of_no_queries_is_zero():
    assert metrics.mean({}, ["map", "ndcg@10"]) == {"map": 0.0, "ndcg@10": 0.0}


@pytest.mark.parametrize(
    ("name", "parsed", "label"),
    [
        ("ndcg@10", ("ndcg", 10), "nDCG@10"),
        ("MRR@5", ("mrr", 5), "MRR@5"),
        ("map", ("map", None), "MAP"),
        ("map@100", ("map", 100), "MAP@100"),
        ("recall@1", ("recall", 1), "Recall@1"),
    ],
)
def test_parse_metric(name, parsed, label):
    assert metrics.parse_metric(name) == parsed
    assert metrics.metric_label(name) == label


@pytest.mark.parametrize("name", ["ndcg", "recall@0", "p@10", "mrr@x", "", "ndcg@-1"])
def test_unknown_metric_names_are_rejected(name):
    with pytest.raises(ValueError, match=rf"^Unknown metric {name!r}: use 'ndcg@K'"):
        metrics.parse_metric(name)


def test_nan_score_is_rejected():
    with pytest.raises(ValueError, match=r"^The score of document 'a' is NaN; every score"):
        metrics.per_query({"q": {"a": 1}}, {"q": {"a": float("nan")}}, ["map"])
