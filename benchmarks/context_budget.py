"""Context budget benchmark: does ``max_context_tokens`` get the gold passage into the context
more often than the best fixed ``top_n`` that fits the same budget?

Run from the repository root::

    python benchmarks/context_budget.py                 # 698 test questions, BM25 top-30
    python benchmarks/context_budget.py --top-k 100     # a deeper first stage (~3x longer)

Data: NQ-open oracle (``../shared/NQ-open-oracle``): 2,655 questions with one gold passage
each. The gold passages, as ``title\\ntext`` and with exact duplicates merged (2,600), are the
corpus. First stage: the project's BM25 (:class:`rerank_plugins.eval.bm25.BM25Index`, ``\\w+``
lowercase words) top-k. Reranker: ``nq-minilm-l6-ce`` (``../shared/models``), trained on the
other questions of the same data, so only its 698 held-out test questions are used (the split
rule of its SOURCE.md).

For each budget B, the share of questions whose gold passage reaches the context:

* ``max_context_tokens=B``: the library's selection (skip a document that does not fit and keep
  filling with the next ones).
* ``stop at first misfit``: the same, but stopping at the first document that does not fit
  (the rule the library did not choose; shown to justify the choice).
* ``best fixed top_n``: the largest ``top_n`` whose context never exceeds B on any of the
  questions (the reranked top ``top_n``), as one would have to set it to be safe.

Tokens are counted with ``llama_index.core.Settings.tokenizer`` (tiktoken ``cl100k_base``,
whose BPE file LlamaIndex ships, so nothing is downloaded). Scores are cached in
``benchmarks/results/context_budget_scores_top<k>.json``: a rerun only redoes the analysis. Results
go to ``benchmarks/results/context_budget.{md,json}``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
SHARED_CANDIDATES = (ROOT / "shared", ROOT.parent / "shared", Path("/work/shared"))
BUDGETS = (500, 1000, 2000)


def find_shared() -> Path:
    """The shared data folder holding NQ-open-oracle and the trained model."""
    for candidate in SHARED_CANDIDATES:
        if (candidate / "NQ-open-oracle" / "nq-open-oracle.jsonl.gz").exists():
            return candidate
    raise SystemExit("NQ-open-oracle not found under ../shared or /work/shared.")


def load_data(shared: Path) -> tuple[list[str], list[tuple[str, str, int]]]:
    """The corpus (unique gold passages) and the test questions as (qid, question, gold doc)."""
    corpus: list[str] = []
    positions: dict[str, int] = {}
    questions: list[tuple[str, str, int]] = []
    path = shared / "NQ-open-oracle" / "nq-open-oracle.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as lines:
        for line_number, line in enumerate(lines):
            record = json.loads(line)
            gold = next(ctx for ctx in record["ctxs"] if ctx["isgold"])
            passage = f"{gold['title']}\n{gold['text']}"
            doc = positions.setdefault(passage, len(corpus))
            if doc == len(corpus):
                corpus.append(passage)
            question = record["question"]
            if int(hashlib.sha1(question.encode("utf-8")).hexdigest(), 16) % 100 < 25:
                questions.append((f"q{line_number}", question, doc))
    return corpus, questions


def score_candidates(
    args: argparse.Namespace, corpus: list[str], questions: list[tuple[str, str, int]]
) -> dict[str, list[tuple[int, float]]]:
    """BM25 top-k per question, reranked; cached (and resumed) in a JSON file."""
    cache_path = RESULTS / f"context_budget_scores_top{args.top_k}.json"
    key = {"model": str(args.model), "top_k": args.top_k, "max_length": args.max_length}
    cache: dict[str, Any] = {"key": key, "scores": {}}
    if cache_path.exists():
        stored = json.loads(cache_path.read_text())
        if stored.get("key") == key:
            cache = stored
    scores: dict[str, list[tuple[int, float]]] = {
        qid: [(int(d), float(s)) for d, s in rows] for qid, rows in cache["scores"].items()
    }
    todo = [q for q in questions if q[0] not in scores]
    if not todo:
        return scores

    from rerank_plugins import get_scorer
    from rerank_plugins.eval.bm25 import BM25Index

    index = BM25Index(corpus, tokenizer="whitespace")
    scorer = get_scorer(str(args.model), max_length=args.max_length, local_files_only=True)
    print(f"Scoring {len(todo)} questions x top-{args.top_k} with {scorer!r}", file=sys.stderr)
    started = time.perf_counter()
    for done, (qid, question, _) in enumerate(todo, start=1):
        docs = [doc for doc, _ in index.search(question, top_k=args.top_k)]
        values = scorer.score(question, [corpus[doc] for doc in docs]) if docs else []
        scores[qid] = list(zip(docs, values, strict=True))
        if done % 20 == 0 or done == len(todo):
            cache["scores"] = scores
            RESULTS.mkdir(parents=True, exist_ok=True)
            cache_path.write_text(json.dumps(cache))
            rate = done * args.top_k / (time.perf_counter() - started)
            print(f"  {done}/{len(todo)} questions, ~{rate:.0f} pairs/s", file=sys.stderr)
    return scores


def report(
    args: argparse.Namespace,
    corpus: list[str],
    questions: list[tuple[str, str, int]],
    scores: dict[str, list[tuple[int, float]]],
) -> int:
    """Compare the rules at each budget; print and save the table."""
    from llama_index.core import Settings

    from rerank_plugins._context import ContextOptions
    from rerank_plugins._results import select_top

    tokenize = Settings.tokenizer
    tokens: dict[int, int] = {}

    def count(doc: int) -> int:
        if doc not in tokens:
            tokens[doc] = len(tokenize(corpus[doc]))
        return tokens[doc]

    ranked_docs: dict[str, list[int]] = {}
    for qid, _, _ in questions:
        docs = [doc for doc, _ in scores[qid]]
        ranked = select_top([s for _, s in scores[qid]], [str(d) for d in docs], None, None)
        ranked_docs[qid] = [docs[r.index] for r in ranked]
    in_first_stage = sum(gold in ranked_docs[qid] for qid, _, gold in questions)
    rows = []
    for budget in BUDGETS:
        budget_hits = stop_hits = 0
        budget_kept = budget_tokens = 0
        safe_top_n = args.top_k
        for qid, _, gold in questions:
            docs = ranked_docs[qid]
            counts = [count(doc) for doc in docs]
            context = ContextOptions.create(
                max_context_tokens=budget, length_function=lambda text: count(int(text))
            )
            ranked = select_top([-i for i in range(len(docs))], [str(d) for d in docs], None, None)
            chosen = context.select(ranked, [str(d) for d in docs]).results
            budget_hits += gold in {docs[r.index] for r in chosen}
            budget_kept += len(chosen)
            budget_tokens += sum(r.tokens or 0 for r in chosen)
            used = fits = 0
            for tokens_of_doc in counts:
                if used + tokens_of_doc > budget:
                    break
                used += tokens_of_doc
                fits += 1
            stop_hits += gold in docs[:fits]
            safe_top_n = min(safe_top_n, fits)
        top_n_hits = sum(gold in ranked_docs[qid][:safe_top_n] for qid, _, gold in questions)
        top_n_tokens = sum(
            sum(count(doc) for doc in ranked_docs[qid][:safe_top_n]) for qid, _, _ in questions
        )
        total = len(questions)
        rows.append(
            {
                "budget": budget,
                "max_context_tokens": budget_hits / total,
                "stop_at_first_misfit": stop_hits / total,
                "best_fixed_top_n": safe_top_n,
                "top_n": top_n_hits / total,
                "mean_docs_budget": budget_kept / total,
                "mean_tokens_budget": budget_tokens / total,
                "mean_tokens_top_n": top_n_tokens / total,
            }
        )
    lengths = sorted(tokens.values())
    lines = [
        f"Questions: {len(questions)} held-out test questions; first stage BM25 top-{args.top_k} "
        f"over {len(corpus)} passages (gold in BM25 top-{args.top_k}: "
        f"{in_first_stage / len(questions):.1%}); reranker {args.model.name}; tokens: "
        f"cl100k_base (Settings.tokenizer), passages {lengths[0]}-{lengths[-1]} tokens "
        f"(median {lengths[len(lengths) // 2]}).",
        "",
        "| budget (tokens) | gold in context: `max_context_tokens` | stop at first misfit "
        "| best fixed `top_n` that never exceeds it | gold in context: that `top_n` "
        "| mean docs / tokens used: budget | mean tokens used: `top_n` |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['budget']:,} | {r['max_context_tokens']:.1%} | {r['stop_at_first_misfit']:.1%} "
        f"| {r['best_fixed_top_n']} | {r['top_n']:.1%} | {r['mean_docs_budget']:.1f} / "
        f"{r['mean_tokens_budget']:.0f} | {r['mean_tokens_top_n']:.0f} |"
        for r in rows
    ]
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    lines += ["", f"Machine: {machine}."]
    text = "\n".join(lines)
    print(text)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "context_budget.md").write_text(text + "\n")
    (RESULTS / "context_budget.json").write_text(
        json.dumps({"rows": rows, "questions": len(questions), "top_k": args.top_k}, indent=2)
    )
    return 0


def parse_args() -> argparse.Namespace:
    """Command-line options."""
    shared = find_shared()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=shared / "models" / "nq-minilm-l6-ce")
    parser.add_argument("--top-k", type=int, default=30, help="BM25 candidates per question.")
    parser.add_argument("--max-length", type=int, default=256, help="Scorer max_length.")
    parser.add_argument("--score-only", action="store_true", help="Fill the cache and stop.")
    args = parser.parse_args()
    args.shared = shared
    return args


def main() -> int:
    """Score (or load cached scores), then compare the selection rules at each budget."""
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    args = parse_args()
    corpus, questions = load_data(args.shared)
    scores = score_candidates(args, corpus, questions)
    if args.score_only:
        return 0
    return report(args, corpus, questions, scores)


if __name__ == "__main__":
    sys.exit(main())
