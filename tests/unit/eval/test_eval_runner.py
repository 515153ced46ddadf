"""evaluate(): first stage, reranking, metrics, latency, report and saved runs."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence

import pytest

from rerank_plugins import RankResult
from rerank_plugins.eval import EvalDataset, evaluate, metrics, trec

CORPUS = {
    "cats": "Cats are small furry pets that purr and chase mice.",
    "dogs": "Dogs are loyal pets that bark and love long walks in the park.",
    "soup": "Tomato soup is made from tomatoes, onions and a little basil.",
    "stocks": "The stock market fell because investors sold shares on Monday.",
    "fuji": "Mount Fuji is the highest mountain in Japan at 3776 meters.",
    "pets": "Many families keep pets such as cats, dogs or fish at home.",
}
QUERIES = {
    "q_cat": "which pets purr and chase mice",
    "q_dog": "pets that bark and love walks",
    "q_soup": "how is tomato soup made",
    "q_fuji": "highest mountain in Japan",
    "q_none": "quantum chromodynamics",  # shares no word with the corpus
    "q_unjudged": "stock market",  # no relevant document: skipped
}
QRELS = {
    "q_cat": {"cats": 2, "pets": 1},
    "q_dog": {"dogs": 1},
    "q_soup": {"soup": 1},
    "q_fuji": {"fuji": 1},
    "q_none": {"stocks": 1},
    "q_unjudged": {"stocks": 0},
}


def make_dataset(candidates: dict[str, list[str]] | None = None) -> EvalDataset:
    return EvalDataset(
        "toy", dict(CORPUS), dict(QUERIES), {q: dict(r) for q, r in QRELS.items()}, candidates
    )


class WordOverlapScorer:
    """Scores a passage by the number of query words it contains (deterministic)."""

    model = "word-overlap"

    def __init__(self) -> None:
        self.calls: list[tuple[str, list[str]]] = []

    def rank(self, query: str, passages: Sequence[str]) -> list[RankResult]:
        self.calls.append((query, list(passages)))
        words = set(query.lower().split())
        scores = [float(len(words & set(p.lower().rstrip(".").split()))) for p in passages]
        order = sorted(range(len(passages)), key=lambda i: -scores[i])
        return [RankResult(i, scores[i], passages[i]) for i in order]


class OracleScorer:
    """A perfect reranker: it scores each passage with its relevance grade."""

    model = "oracle"

    def __init__(self, dataset: EvalDataset) -> None:
        self._grades = {
            (dataset.queries[qid], dataset.corpus[docid]): rel
            for qid, judged in dataset.qrels.items()
            for docid, rel in judged.items()
        }

    def rank(self, query: str, passages: Sequence[str]) -> list[RankResult]:
        scores = [float(self._grades.get((query, p), 0)) for p in passages]
        return sorted((RankResult(i, s) for i, s in enumerate(scores)), key=lambda r: -r.score)


def test_perfect_reranker_scores_one_over_given_candidates():
    dataset = make_dataset({qid: list(reversed(CORPUS)) for qid in QUERIES})
    report = evaluate(OracleScorer(dataset), dataset, first_stage="none", top_k=6, progress=False)
    assert report.num_queries == 5
    assert report.skipped_queries == 1
    # Everything is perfect except recall@1 of q_cat, which has two relevant documents.
    assert report.metrics["reranked"] == {
        **dict.fromkeys(report.metric_names, 1.0),
        "recall@1": 0.9,
    }
    # The given order (reversed corpus) is the first-stage ranking, and it is worse.
    assert report.metrics["first_stage"]["ndcg@10"] < 1.0
    assert report.first_stage_run["q_dog"] == {
        d: float(6 - i) for i, d in enumerate(reversed(CORPUS))
    }


def test_perfect_reranker_after_bm25_reaches_what_bm25_retrieved():
    dataset = make_dataset()
    report = evaluate(OracleScorer(dataset), dataset, top_k=5, progress=False)
    assert report.bm25_tokenizer in ("fugashi", "bigram")
    assert report.metric_names == ("ndcg@10", "mrr@10", "map", "recall@1", "recall@5", "recall@10")
    per_query = report.per_query["reranked"]
    # q_none shares no word with the corpus: BM25 finds nothing, no scorer call, all zeros.
    assert report.first_stage_run["q_none"] == report.reranked_run["q_none"] == {}
    assert per_query["q_none"] == dict.fromkeys(report.metric_names, 0.0)
    for qid in ("q_cat", "q_dog", "q_soup", "q_fuji"):
        assert per_query[qid]["ndcg@10"] == 1.0, qid
    # Reranking reorders the same candidates: recall at the full depth cannot change.
    for qid in per_query:
        assert per_query[qid]["recall@5"] == report.per_query["first_stage"][qid]["recall@5"]


def test_report_metrics_equal_metrics_on_the_saved_run_files(tmp_path):
    dataset = make_dataset()
    report = evaluate(WordOverlapScorer(), dataset, top_k=4, progress=False)
    paths = report.save_runs(tmp_path / "runs")
    assert {name: path.name for name, path in paths.items()} == {
        "first_stage": "first_stage.run",
        "reranked": "reranked.run",
        "qrels": "qrels.txt",
    }
    qrels = trec.read_qrels(paths["qrels"])
    assert qrels == {qid: QRELS[qid] for qid in QRELS if qid != "q_unjudged"}
    for stage in ("first_stage", "reranked"):
        run = trec.read_run(paths[stage])
        # Queries without candidates have no lines; they still count as 0 (trec_eval -c).
        assert metrics.evaluate(qrels, run, report.metric_names) == report.metrics[stage]
    assert paths["first_stage"].read_text(encoding="utf-8").split("\n", 1)[0].endswith(" bm25")


def test_saved_runs_agree_with_trec_eval(tmp_path):
    pytrec_eval = pytest.importorskip("pytrec_eval")
    dataset = make_dataset({qid: list(CORPUS) for qid in QUERIES})
    report = evaluate(WordOverlapScorer(), dataset, first_stage="none", progress=False)
    paths = report.save_runs(tmp_path)
    qrels = trec.read_qrels(paths["qrels"])
    evaluator = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10", "map"})
    for stage in ("first_stage", "reranked"):
        values = evaluator.evaluate(trec.read_run(paths[stage])).values()
        for ours, theirs in (("ndcg@10", "ndcg_cut_10"), ("map", "map")):
            expected = math.fsum(row[theirs] for row in values) / len(values)
            assert report.metrics[stage][ours] == pytest.approx(expected, abs=1e-12)


def test_scorer_gets_the_first_stage_candidates_in_order():
    dataset = make_dataset({"q_soup": ["fuji", "soup", "ghost"], "q_cat": ["cats", "cats", "dogs"]})
    with pytest.raises(
        ValueError, match=r"^Query 'q_soup' lists candidate 'ghost', which is not in the corpus"
    ):
        evaluate(WordOverlapScorer(), dataset, first_stage="none", progress=False)
    dataset.candidates["q_soup"].remove("ghost")
    scorer = WordOverlapScorer()
    report = evaluate(scorer, dataset, first_stage="none", top_k=2, progress=False)
    # Duplicates dropped, cut to top_k; queries without candidates cause no call.
    assert scorer.calls == [
        (QUERIES["q_cat"], [CORPUS["cats"], CORPUS["dogs"]]),
        (QUERIES["q_soup"], [CORPUS["fuji"], CORPUS["soup"]]),
    ]
    assert report.num_queries == 5
    assert report.reranked_run["q_soup"] == {"soup": 4.0, "fuji": 1.0}  # "how is tomato soup made"


def test_limit_latency_and_report_outputs(capsys):
    report = evaluate(WordOverlapScorer(), make_dataset(), top_k=3, limit=2, progress=True)
    assert report.num_queries == 2
    assert list(report.qrels) == ["q_cat", "q_dog"]
    assert "Reranking" in capsys.readouterr().err  # the tqdm bar
    latency = report.latency
    assert set(latency) == {
        "rerank_p50_ms",
        "rerank_p95_ms",
        "rerank_mean_ms",
        "rerank_total_s",
        "index_s",
        "first_stage_s",
        "total_s",
    }
    assert 0 < latency["rerank_p50_ms"] <= latency["rerank_p95_ms"]
    assert latency["total_s"] >= latency["rerank_total_s"] + latency["first_stage_s"]
    data = json.loads(json.dumps(report.to_dict(per_query=True)))
    assert data["model"] == "word-overlap"
    assert data["metrics"]["reranked"] == report.metrics["reranked"]
    assert set(data["per_query"]["reranked"]) == {"q_cat", "q_dog"}
    assert "per_query" not in report.to_dict()
    table = report.format_table()
    assert "first stage:  bm25, tokenizer " in table
    assert "1 without a relevant document skipped" in table
    row = next(line for line in table.splitlines() if line.startswith("nDCG@10"))
    before, after = report.metrics["first_stage"]["ndcg@10"], report.metrics["reranked"]["ndcg@10"]
    assert row.split() == ["nDCG@10", f"{before:.4f}", f"{after:.4f}", f"{after - before:+.4f}"]
    assert [
        line.split()[0] for line in table.splitlines() if "@" in line or line.startswith("MAP")
    ] == [
        "nDCG@10",
        "MRR@10",
        "MAP",
        "Recall@1",
        "Recall@3",
        "Recall@5",
        "Recall@10",
    ]


def test_first_stage_none_needs_candidates():
    with pytest.raises(
        ValueError,
        match=(
            r"^first_stage='none' needs per-query candidates, and the data set 'toy' has none; "
            r"use first_stage='bm25'\.$"
        ),
    ):
        evaluate(WordOverlapScorer(), make_dataset(), first_stage="none", progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"first_stage": "dense"}, r"^first_stage must be 'bm25' or 'none', got 'dense'\.$"),
        ({"top_k": 0}, r"^top_k must be a positive int, got 0\.$"),
        ({"limit": 0}, r"^limit must be a positive int, got 0\.$"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        evaluate(WordOverlapScorer(), make_dataset(), progress=False, **kwargs)


def test_object_without_rank_is_rejected():
    with pytest.raises(
        TypeError, match=r"^scorer must have a rank\(query, passages\) method, .* got str\.$"
    ):
        evaluate("cross-encoder/ms-marco-MiniLM-L6-v2", make_dataset(), progress=False)


def test_result_index_out_of_range_is_reported():
    class Broken:
        def rank(self, query, passages):
            return [RankResult(len(passages), 1.0)]

    with pytest.raises(
        ValueError, match=r"^scorer\.rank\(\) returned index 3 for 3 passages \(query 'q_cat'\)"
    ):
        evaluate(Broken(), make_dataset(), top_k=3, progress=False)
