"""Agreement, quality and speed of each precision mode on a trained reranker.

Run from the repository root::

    python benchmarks/agreement.py                         # 100 test questions, ~30 min on 2 cores
    python benchmarks/agreement.py --questions 300 --speed-questions 30
    python benchmarks/agreement.py --modes "ours default,ours bf16,ours torch bf16"

The model is the trained NQ cross-encoder in ``shared/models/nq-minilm-l6-ce`` (its
``SOURCE.md`` says how it was trained; ``--model`` takes another, e.g. a seeded-head benchmark
model). Questions are the held-out test questions of its ``split.json``; the first stage is
BM25 (rank_bm25 ``BM25Okapi``, lowercase ``\\w+`` tokens) top-100 over the 2,600 gold passages
of NQ-open oracle, as in ``SOURCE.md``. Each question is one request of 100 passages.

Every mode scores every question; the modes take turns in a rotated order, so speed ratios are
paired in time. sentence-transformers (fp32, and bf16 weights) run on the first
``--speed-questions`` questions only (they are the slow peers); speed is the median of the
per-question ratios on those. Agreement is measured against ``ours default`` (ONNX fp32):
top-5 *set* same (the same five passages, any order), top-5 *list* same (same order too),
mean Kendall tau over the 100 passages, and nDCG@10 / MRR@10 against the gold passage,
with BM25's own order as the first row. The int8 attempts (``_quantize.py``) are built from
the scorer's cached fp32 export; the static ones are calibrated on train-split questions.
Results go to ``benchmarks/results/agreement.{md,json}``.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import math
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
import _quantize as q

# shared/ beside the repository, or two levels up (a git worktree under <root>/wt/<name>).
SHARED = (c.ROOT / "shared", c.ROOT.parent / "shared", c.ROOT.parent.parent / "shared")
MODEL_CANDIDATES = tuple(root / "models" / "nq-minilm-l6-ce" for root in SHARED)
CORPUS_CANDIDATES = tuple(root / "NQ-open-oracle" / "nq-open-oracle.jsonl.gz" for root in SHARED)
REFERENCE = "ours default"
PEERS = ("sentence-transformers fp32", "sentence-transformers bf16")
DEFAULT_MODES = (
    *PEERS,
    REFERENCE,
    "ours torch fp32",
    "ours torch bf16",
    "ours bf16",
    "ours int8",
    "int8 dynamic ffn-out-fp32",
    "int8 static minmax",
    "int8 smoothquant",
)
# Other modes this benchmark knows (pass them with --modes).
EXTRA_MODES = (
    "int8 static percentile",
    "openvino int8 static",
    "openvino int8 smoothquant",
    "openvino int8 ffn-out-fp32",
)
# Modes scored on the speed questions only: the slow peers, torch fp32 (equal to the reference
# to ~1e-6, see the table) and static QDQ int8 (no faster than fp32 on onnxruntime's CPU EP).
LIMITED = (*PEERS, "ours torch fp32", "int8 static minmax", "int8 static percentile")
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "avx_vnni", "amx_bf16", "amx_int8")
TOKEN = re.compile(r"\w+")
DEPTH = 100
CALIBRATION_QUESTIONS = 64
CALIBRATION_PASSAGES = 8

Scorer = Callable[[str, list[str]], list[float]]


@dataclass
class Data:
    """Passages, the held-out and train questions, their gold passage and BM25 candidates."""

    passages: list[str]
    questions: dict[str, str]
    gold: dict[str, int]
    test: list[str]
    train: list[str]
    candidates: dict[str, list[int]] = field(default_factory=dict)


def load_data(corpus: Path, split: Path) -> Data:
    """The corpus of gold passages (duplicates merged) and the split, as in SOURCE.md."""
    passages: list[str] = []
    index: dict[str, int] = {}
    questions: dict[str, str] = {}
    gold: dict[str, int] = {}
    with gzip.open(corpus, "rt", encoding="utf-8") as handle:
        for line, row in enumerate(map(json.loads, handle)):
            ctx = next(ctx for ctx in row["ctxs"] if ctx["isgold"])
            text = f"{ctx['title']}\n{ctx['text']}"
            if text not in index:
                index[text] = len(passages)
                passages.append(text)
            questions[f"q{line}"] = row["question"]
            gold[f"q{line}"] = index[text]
    ids = json.loads(split.read_text())
    for qid in ids["test"][:5]:  # the split's rule, checked on a few questions
        digest = int(hashlib.sha1(questions[qid].encode("utf-8")).hexdigest(), 16)
        if digest % 100 >= 25:
            raise SystemExit(f"{split} does not match {corpus}: {qid} is not a test question")
    return Data(passages, questions, gold, list(ids["test"]), list(ids["train"]))


def bm25_candidates(data: Data, qids: Sequence[str]) -> None:
    """BM25 top-100 (rank_bm25 ``BM25Okapi``, lowercase ``\\w+`` tokens) for each question."""
    try:
        from rank_bm25 import BM25Okapi
    except ImportError as err:
        raise SystemExit("This benchmark needs rank_bm25: pip install rank_bm25") from err
    import numpy as np

    bm25 = BM25Okapi([TOKEN.findall(p.lower()) for p in data.passages])
    for qid in qids:
        scores = bm25.get_scores(TOKEN.findall(data.questions[qid].lower()))
        order = np.argsort(-scores, kind="stable")[:DEPTH]
        data.candidates[qid] = [int(i) for i in order]


def cpu_facts() -> dict[str, Any]:
    """The CPU model, family/model numbers and the flags that decide bf16 and int8 speed."""
    facts: dict[str, Any] = {"flags": {}}
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return facts
    first = text.split("\n\n", 1)[0]
    fields = {
        key.strip(): value.strip()
        for key, _, value in (line.partition(":") for line in first.splitlines())
    }
    present = set(fields.get("flags", "").split())
    facts["model_name"] = fields.get("model name")
    facts["family_model"] = f"family {fields.get('cpu family')} model {fields.get('model')}"
    facts["flags"] = {flag: flag in present for flag in CPU_FLAGS}
    return facts


# ---------------------------------------------------------------------------------------------
# Modes


def _ours(model: Path, **options: Any) -> tuple[Scorer, Any]:
    from rerank_plugins import CrossEncoderScorer

    scorer = CrossEncoderScorer(str(model), device="cpu", **options)
    return scorer.score, scorer


def _sentence_transformers(model: Path, bf16: bool) -> Scorer:
    import torch
    from sentence_transformers import CrossEncoder

    kwargs = {"model_kwargs": {"torch_dtype": torch.bfloat16}} if bf16 else {}
    encoder = CrossEncoder(str(model), device="cpu", **kwargs)

    def run(query: str, passages: list[str]) -> list[float]:
        scores = encoder.predict([(query, p) for p in passages], batch_size=32)
        return [float(x) for x in scores]

    return run


def _calibration_batches(data: Data, tokenizer: Any, names: Sequence[str]) -> list[dict[str, Any]]:
    """Tokenized batches of train-split (question, BM25 candidate) pairs; never test ones."""
    batches = []
    for qid in data.train[:CALIBRATION_QUESTIONS]:
        passages = [data.passages[i] for i in data.candidates[qid][:CALIBRATION_PASSAGES]]
        encoded = tokenizer(
            [data.questions[qid]] * len(passages),
            passages,
            truncation="only_second",
            max_length=512,
            padding=True,
            return_tensors="np",
        )
        batches.append({name: encoded[name].astype("int64") for name in names})
    return batches


def load_modes(
    names: Sequence[str], model: Path, data: Data, workdir: Path
) -> tuple[dict[str, Scorer], dict[str, float]]:
    """Load every mode; the int8 attempts are built from the reference's cached export."""
    from rerank_plugins.scorer._onnx_runtime import OnnxCrossEncoder
    from rerank_plugins.scorer._openvino_runtime import OpenVinoCrossEncoder

    loaded: dict[str, Scorer] = {}
    seconds: dict[str, float] = {}
    reference = None
    for name in [REFERENCE, *[n for n in names if n != REFERENCE]]:
        start = time.perf_counter()
        if name == "sentence-transformers fp32":
            loaded[name] = _sentence_transformers(model, bf16=False)
        elif name == "sentence-transformers bf16":
            loaded[name] = _sentence_transformers(model, bf16=True)
        elif name == REFERENCE:
            loaded[name], reference = _ours(model)
        elif name == "ours torch fp32":
            loaded[name], _ = _ours(model, backend="torch")
        elif name == "ours torch bf16":
            loaded[name], _ = _ours(model, dtype="bfloat16", backend="torch")
        elif name == "ours bf16":
            loaded[name], bf16 = _ours(model, dtype="bfloat16")
            print(f"ours bf16 runs on {bf16.backend}", flush=True)
        elif name == "ours int8":
            loaded[name], _ = _ours(model, dtype="int8")
        else:
            if reference is None or reference.backend != "onnx":
                raise SystemExit("the int8 attempts need the ONNX export of 'ours default'")
            fp32_path = reference._network.path
            workdir.mkdir(parents=True, exist_ok=True)
            suffix = ".xml" if name.startswith("openvino int8") else ".onnx"
            target = workdir / (re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") + suffix)
            if not target.is_file():
                inputs = OnnxCrossEncoder(fp32_path, device="cpu").input_names
                batches = _calibration_batches(data, reference._tokenizer, inputs)
                if name == "int8 dynamic ffn-out-fp32":
                    q.dynamic(fp32_path, target, keep_ffn_out=True)
                elif name.startswith("int8 static"):
                    method = "MinMax" if "minmax" in name else "Percentile"
                    q.static(fp32_path, target, batches, method)
                elif name.startswith("int8 smoothquant"):
                    q.smooth(fp32_path, target, batches)
                elif name.startswith("openvino int8"):
                    alpha = 0.5 if "smoothquant" in name else None
                    keep = "ffn-out" in name
                    q.openvino_static(fp32_path, target, batches, alpha, keep_ffn_out=keep)
                else:
                    known = ", ".join((*DEFAULT_MODES, *EXTRA_MODES))
                    raise SystemExit(f"unknown mode {name!r}; known: {known}")
            score, scorer = _ours(model, backend="onnx")
            if target.suffix == ".xml":
                network: Any = OpenVinoCrossEncoder(target, dtype="float32")
            else:
                network = OnnxCrossEncoder(target, device="cpu")
            scorer._network = scorer._run_network = network
            loaded[name] = score
        seconds[name] = time.perf_counter() - start
        print(f"loaded {name} in {seconds[name]:.1f} s", flush=True)
    return {n: loaded[n] for n in names if n in loaded} | {REFERENCE: loaded[REFERENCE]}, seconds


# ---------------------------------------------------------------------------------------------
# Metrics


def ranking(scores: Sequence[float]) -> list[int]:
    """Positions by descending score, ties by position (as ``rank`` orders them)."""
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))


def ndcg_mrr_at_10(order: Sequence[int], relevant: int) -> tuple[float, float]:
    """nDCG@10 and MRR@10 with one relevant passage (binary gain)."""
    for rank, doc in enumerate(order[:10], start=1):
        if doc == relevant:
            return 1.0 / math.log2(rank + 1), 1.0 / rank
    return 0.0, 0.0


def summarise(
    modes: Sequence[str],
    qids: Sequence[str],
    data: Data,
    scores: dict[str, dict[str, list[float]]],
    seconds: dict[str, dict[str, float]],
) -> list[dict[str, Any]]:
    """One row per mode: speed vs the peers, agreement with the reference, quality."""
    rows = []
    bm25 = [ndcg_mrr_at_10(data.candidates[qid], data.gold[qid]) for qid in qids]
    rows.append(
        {
            "mode": "BM25 (first stage)",
            "ndcg10": statistics.fmean(x for x, _ in bm25),
            "mrr10": statistics.fmean(y for _, y in bm25),
        }
    )
    for mode in modes:
        done = [qid for qid in qids if qid in scores[mode]]
        row: dict[str, Any] = {"mode": mode, "questions": len(done)}
        pairs = DEPTH * len(seconds[mode])
        row["pairs_s"] = pairs / sum(seconds[mode].values()) if seconds[mode] else None
        for peer in PEERS:
            paired = [
                seconds[peer][qid] / seconds[mode][qid]
                for qid in seconds.get(peer, {})
                if qid in seconds[mode]
            ]
            row[f"x {peer}"] = statistics.median(paired) if paired else None
        metrics = []
        for qid in done:
            order = [data.candidates[qid][i] for i in ranking(scores[mode][qid])]
            metrics.append(ndcg_mrr_at_10(order, data.gold[qid]))
        row["ndcg10"] = statistics.fmean(x for x, _ in metrics)
        row["mrr10"] = statistics.fmean(y for _, y in metrics)
        shared = [qid for qid in done if qid in scores[REFERENCE]]
        ref = [scores[REFERENCE][qid] for qid in shared]
        mine = [scores[mode][qid] for qid in shared]
        row["top5_set_pct"] = 100.0 * statistics.fmean(
            set(c.top_k(a)) == set(c.top_k(b)) for a, b in zip(ref, mine, strict=True)
        )
        row["top5_list_pct"] = 100.0 * statistics.fmean(
            c.top_k(a) == c.top_k(b) for a, b in zip(ref, mine, strict=True)
        )
        row["top1_pct"] = 100.0 * statistics.fmean(
            c.top_k(a, 1) == c.top_k(b, 1) for a, b in zip(ref, mine, strict=True)
        )
        taus = [c.kendall_tau(a, b) for a, b in zip(ref, mine, strict=True)]
        row["kendall_tau"] = statistics.fmean(taus)
        row["max_abs_diff"] = max(
            abs(x - y) for a, b in zip(ref, mine, strict=True) for x, y in zip(a, b, strict=True)
        )
        rows.append(row)
    return rows


def _fmt(value: Any, pattern: str, suffix: str = "") -> str:
    return "-" if value is None else format(value, pattern) + suffix


def render(facts: dict[str, Any], rows: list[dict[str, Any]], command: str) -> str:
    """The markdown report: machine, command, then one table row per mode."""
    cpu = facts["cpu"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in cpu["flags"].items())
    lines = [
        f"# Agreement and speed on {facts['model']}",
        "",
        f"{facts['date']}: {cpu.get('model_name')} ({cpu.get('family_model')}), "
        f"{facts['cores']} cores, {facts['torch_threads']} torch thread(s); flags: {flags}; "
        f"torch {facts['torch']}, onnxruntime {facts['onnxruntime']}, "
        f"sentence-transformers {facts['sentence_transformers']}. Load average "
        f"{facts['load_start']} at the start, {facts['load_end']} at the end. "
        f"{facts['questions']} held-out questions x BM25 top-{DEPTH} "
        f"(speed on the first {facts['speed_questions']}, paired per question; the peers, "
        "torch fp32 and static int8 score those only).",
        "",
        f"Command: `{command}`",
        "",
        "| mode | questions | pairs/s | x ST fp32 | x ST bf16 | top-5 set same "
        "| top-5 list same | top-1 same | Kendall tau | max abs diff | nDCG@10 | MRR@10 |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        if "questions" not in row:
            lines.append(
                f"| {row['mode']} | {facts['questions']} | - | - | - | - | - | - | - | - | "
                f"{row['ndcg10']:.4f} | {row['mrr10']:.4f} |"
            )
            continue
        reference = row["mode"] == REFERENCE
        lines.append(
            f"| {row['mode']} | {row['questions']} | {_fmt(row['pairs_s'], '.1f')} "
            f"| {_fmt(row['x sentence-transformers fp32'], '.2f', 'x')} "
            f"| {_fmt(row['x sentence-transformers bf16'], '.2f', 'x')} "
            + (
                "| ref | ref | ref | 1 | - "
                if reference
                else f"| {row['top5_set_pct']:.1f}% | {row['top5_list_pct']:.1f}% "
                f"| {row['top1_pct']:.1f}% | {row['kendall_tau']:.4f} "
                f"| {row['max_abs_diff']:.1e} "
            )
            + f"| {row['ndcg10']:.4f} | {row['mrr10']:.4f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="cross-encoder directory (default: nq-minilm-l6-ce)")
    parser.add_argument("--split", help="split.json (default: the model's)")
    parser.add_argument("--corpus", help="nq-open-oracle.jsonl.gz (default: shared/NQ-open-oracle)")
    parser.add_argument("--questions", type=int, default=100, help="held-out questions scored")
    parser.add_argument(
        "--speed-questions",
        type=int,
        default=20,
        help="of those, how many the sentence-transformers peers also score (speed)",
    )
    parser.add_argument(
        "--skip", type=int, default=0, help="skip the first N held-out questions (extend a run)"
    )
    parser.add_argument("--modes", help="comma-separated modes (default: all)")
    parser.add_argument("--output", default="agreement", help="results file stem")
    args = parser.parse_args(argv)
    if args.questions < 1 or args.speed_questions < 0 or args.skip < 0:
        parser.error("--questions must be >= 1, --speed-questions and --skip >= 0")
    found = next((path for path in MODEL_CANDIDATES if path.is_dir()), None)
    model = Path(args.model) if args.model else found
    if model is None or not (model / "config.json").is_file():
        parser.error("no trained model found: pass --model (see shared/models/nq-minilm-l6-ce)")
    split = Path(args.split) if args.split else model / "split.json"
    if not split.is_file():
        split = next(p / "split.json" for p in MODEL_CANDIDATES if (p / "split.json").is_file())
    corpus = c.find_corpus(args.corpus) or next(
        (path for path in CORPUS_CANDIDATES if path.is_file()), None
    )
    if corpus is None:
        parser.error("NQ-open oracle not found: pass --corpus")
    modes = [m.strip() for m in args.modes.split(",")] if args.modes else list(DEFAULT_MODES)
    os.environ.setdefault("RERANK_PLUGINS_CACHE_DIR", str(c.RESULTS / "onnx-cache"))

    facts = c.machine() | {"cpu": cpu_facts(), "model": model.name}
    facts["load_start"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    data = load_data(corpus, split)
    qids = data.test[args.skip : args.skip + args.questions]
    bm25_candidates(data, qids + data.train[:CALIBRATION_QUESTIONS])
    workdir = c.RESULTS / "quantized" / hashlib.sha1(str(model.resolve()).encode()).hexdigest()[:10]
    scorers, load_seconds = load_modes(modes, model, data, workdir)
    order = [m for m in modes if m in scorers] + [m for m in scorers if m not in modes]
    scores: dict[str, dict[str, list[float]]] = {m: {} for m in order}
    seconds: dict[str, dict[str, float]] = {m: {} for m in order}
    command = "python benchmarks/agreement.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    facts["speed_questions"] = min(args.speed_questions, len(qids))
    started = time.perf_counter()
    for n, qid in enumerate(qids):
        passages = [data.passages[i] for i in data.candidates[qid]]
        turn = order[n % len(order) :] + order[: n % len(order)]
        for mode in turn:
            if mode in LIMITED and n >= args.speed_questions:
                continue
            took, result = c.timed(scorers[mode], data.questions[qid], passages)
            scores[mode][qid], seconds[mode][qid] = result, took
        if n % 5 == 4 or n == len(qids) - 1:
            took_s = time.perf_counter() - started
            print(f"{n + 1}/{len(qids)} questions, {took_s:.0f} s", flush=True)
            # Written as it goes, so a run stopped early still leaves its report.
            facts["load_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
            facts["questions"] = n + 1
            done = qids[: n + 1]
            rows = summarise([m for m in order if scores[m]], done, data, scores, seconds)
            markdown = render(facts, rows, command.strip())
            data_out = {"machine": facts, "rows": rows, "load_seconds": load_seconds}
            md_path, json_path = c.write_results(
                args.output, markdown, data_out | {"scores": scores}
            )
    print("\n" + markdown)
    print(f"Wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
