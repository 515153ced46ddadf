"""Throughput benchmark: our scorer (each backend/dtype) against sentence-transformers and peers.

Run from the repository root::

    python benchmarks/throughput.py            # full run (~10-15 min on 2 cores)
    python benchmarks/throughput.py --quick    # smoke run (< 2 min)

All systems load the same local model and score the same requests (1 query x 100 passages)
in one process. Each round gives every system the same new request, in a rotated order, and
also re-measures the machine's fp32 GEMM rate; the report quotes the median of per-round
ratios, because timings on small shared machines drift by ~25% between minutes. Results
are printed and written to ``benchmarks/results/throughput.{md,json}``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
import systems as s

PEERS = ["sentence-transformers", "langchain", "llama-index"]
REFERENCE = "ours torch fp32"


@dataclass
class Cell:
    """One (model, workload) comparison."""

    model: str
    workload: str
    systems: list[str]
    rounds: int
    seconds: dict[str, list[float]] = field(default_factory=dict)
    scores: dict[str, list[list[float] | None]] = field(default_factory=dict)
    top5: dict[str, list[list[int]]] = field(default_factory=dict)
    bound_pairs_s: list[float] = field(default_factory=list)
    workload_stats: dict[str, Any] = field(default_factory=dict)


def plan(args: argparse.Namespace, bf16_native: bool) -> list[Cell]:
    """Which systems run on which (model, workload), and for how many rounds."""
    bf16 = ["ours bf16", "ours torch bf16"] if bf16_native or args.with_bf16 else []
    overlap = ["ours default, overlap", "ours torch fp32, overlap"] if args.with_overlap else []
    core = ["sentence-transformers", "ours default", REFERENCE, "ours onnx int8"]
    if args.quick:
        return [Cell("minilm-l6", "realistic", [*PEERS, *core[1:], *bf16, *overlap], 2)]
    if args.modernbert:
        return [Cell("modernbert-xsmall", "realistic", core[:3], args.rounds)]
    cells = [
        Cell(
            "minilm-l6",
            "realistic",
            [*PEERS, *core[1:], "ours bf16", "ours torch bf16", *overlap],
            args.rounds,
        ),
        Cell("minilm-l6", "short", core + bf16, args.rounds),
        Cell("minilm-l6", "long", core[:3] + bf16, args.rounds),
        Cell("minilm-l12", "realistic", core + bf16, args.rounds),
    ]
    if args.systems:
        wanted = set(args.systems.split(","))
        for cell in cells:
            cell.systems = [name for name in cell.systems if name in wanted or name == REFERENCE]
    return cells


def measure(cells: list[Cell], models: dict[str, Path], corpus: Path | None) -> dict[str, float]:
    """Run every cell; return in-process load seconds per (model, system)."""
    from transformers import AutoConfig, AutoTokenizer

    load_seconds: dict[str, float] = {}
    for model_name in dict.fromkeys(cell.model for cell in cells):
        model_dir = models[model_name]
        config = AutoConfig.from_pretrained(model_dir)
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        mine = [cell for cell in cells if cell.model == model_name]
        loaded: dict[str, s.System] = {}
        for name in dict.fromkeys(n for cell in mine for n in cell.systems):
            start = time.perf_counter()
            loaded[name] = s.load(name, model_dir)
            load_seconds[f"{model_name} / {name}"] = time.perf_counter() - start
        for cell in mine:
            requests = c.make_requests(
                cell.workload, cell.rounds + 1, model_dir=model_dir, corpus=corpus
            )
            stats = c.describe_requests(requests, tokenizer)
            tokens = stats.pop("tokens_per_pair")
            cell.workload_stats = stats
            print(f"\n== {model_name} / {cell.workload}: {stats}", flush=True)
            warm_up = c.Request(requests[0].query, requests[0].passages[:16])
            for name in cell.systems:  # warm-up on a request that is not timed
                loaded[name].run(warm_up)
                cell.seconds[name], cell.scores[name], cell.top5[name] = [], [], []
            pairs = len(requests[0].passages)
            for round_index in range(cell.rounds):
                request = requests[round_index + 1]
                lengths = tokens[(round_index + 1) * pairs : (round_index + 2) * pairs]
                flops = statistics.fmean(c.pair_flops(config, n) for n in lengths)
                gflops = c.measure_matmul_gflops(seconds=0.8)
                cell.bound_pairs_s.append(gflops * 1e9 / flops)
                shift = round_index % len(cell.systems)
                for name in cell.systems[shift:] + cell.systems[:shift]:
                    seconds, (scores, top) = c.timed(loaded[name].run, request)
                    cell.seconds[name].append(seconds)
                    cell.scores[name].append(scores)
                    cell.top5[name].append(top)
                line = "  ".join(f"{n}={pairs / cell.seconds[n][-1]:.1f}" for n in cell.systems)
                print(f"round {round_index + 1}/{cell.rounds} pairs/s: {line}", flush=True)
        for system in loaded.values():
            if system.closer is not None:
                system.closer()
    return load_seconds


def startup(names: list[str], model_dir: Path, corpus: Path | None) -> dict[str, dict[str, float]]:
    """Load time, time to first score and peak RSS of each system, each in a fresh process."""
    request = c.make_requests("realistic", 1, model_dir=model_dir, corpus=corpus)[0]
    found: dict[str, dict[str, float]] = {}
    bench = str(Path(__file__).resolve().parent)
    for name in names:
        runs = [("", str(s.ONNX_CACHE))]
        if name in s.EXPORTS:  # the first load exports into an empty cache; later loads reuse it
            runs.insert(0, (" (first load: export)", tempfile.mkdtemp(prefix="rp-onnx-")))
        for suffix, cache in runs:
            code = s.STARTUP_SNIPPET.format(
                bench=bench,
                cache=cache,
                name=name,
                model=str(model_dir),
                query=request.query,
                passages=request.passages,
            )
            found[name + suffix] = c.measure_in_subprocess(code)
            print(f"startup {name}{suffix}: {found[name + suffix]}", flush=True)
    return found


def summarise(cell: Cell) -> list[dict[str, Any]]:
    """One row of numbers per system of a cell."""
    pairs = c.PASSAGES_PER_REQUEST
    reference_scores = cell.scores.get(REFERENCE)
    rows = []
    for name in cell.systems:
        seconds = cell.seconds[name]
        rates = [pairs / x for x in seconds]
        ratios = [
            st / x for st, x in zip(cell.seconds["sentence-transformers"], seconds, strict=True)
        ]
        bound = [r / b for r, b in zip(rates, cell.bound_pairs_s, strict=True)]
        row: dict[str, Any] = {
            "system": name,
            "pairs_per_s_median": statistics.median(rates),
            "pairs_per_s_min": min(rates),
            "pairs_per_s_max": max(rates),
            "latency_p50_ms": 1000 * c.percentile(seconds, 0.5),
            "latency_p95_ms": 1000 * c.percentile(seconds, 0.95),
            "ratio_vs_st_median": statistics.median(ratios),
            "ratio_vs_st_per_round": ratios,
            "pct_of_bound_median": 100 * statistics.median(bound),
        }
        if reference_scores is not None and name != REFERENCE:
            scores = cell.scores[name]
            if all(x is not None for x in scores):
                row.update(c.agreement(reference_scores, scores))  # type: ignore[arg-type]
            else:
                reference_top = [c.top_k(x) for x in reference_scores if x is not None]
                same = [a == b for a, b in zip(reference_top, cell.top5[name], strict=True)]
                row["top5_identical_pct"] = 100.0 * sum(same) / len(same)
        rows.append(row)
    return rows


def render(
    facts: dict[str, Any],
    cells: list[Cell],
    tables: dict[str, list[dict[str, Any]]],
    load_seconds: dict[str, float],
    starts: dict[str, dict[str, float]],
    command: str,
) -> str:
    """The markdown report."""
    lines = [
        "# rerank-plugins throughput benchmark",
        "",
        f"- command: `{command}`",
        f"- date: {facts['date']}; CPU: {facts['cpu']} ({facts['cores']} cores); "
        f"load average at start/end: {facts['load_start']} / {facts['load_end']}",
        f"- python {facts['python']}, torch {facts['torch']} ({facts['torch_threads']} threads), "
        f"transformers {facts['transformers']}, sentence-transformers "
        f"{facts['sentence_transformers']}, onnxruntime {facts['onnxruntime']}",
        f"- bf16 native on this CPU: {facts['bf16_native']}; text: {facts['corpus']}",
        "- each round: one new request (1 query x 100 passages) per system, order rotated; "
        "ratio = median over rounds of (sentence-transformers seconds / system seconds) in the "
        "same round; bound = the round's best fp32 GEMM rate / model FLOPs per pair;",
        "  agreement is against `ours torch fp32` on the timed requests (top-5 identical = same 5 "
        "passages in the same order).",
    ]
    for cell in cells:
        stats = cell.workload_stats
        lines += [
            "",
            f"## {cell.model} / {cell.workload} ({cell.rounds} rounds; words median "
            f"{stats['words_median']} [{stats['words_min']}-{stats['words_max']}], tokens mean "
            f"{stats['tokens_mean']} [{stats['tokens_min']}-{stats['tokens_max']}]; bound "
            f"{statistics.median(cell.bound_pairs_s):.1f} pairs/s)",
            "",
            "| system | pairs/s median (min-max) | request p50 / p95 ms | x sentence-transformers"
            " | % of fp32 bound | top-5 identical | Kendall tau mean (min) | max abs score diff |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for row in tables[f"{cell.model}/{cell.workload}"]:
            tau = (
                f"{row['kendall_tau_mean']:.3f} ({row['kendall_tau_min']:.3f})"
                if "kendall_tau_mean" in row
                else ("reference" if row["system"] == REFERENCE else "-")
            )
            top = (
                f"{row['top5_identical_pct']:.0f}%"
                if "top5_identical_pct" in row
                else ("reference" if row["system"] == REFERENCE else "-")
            )
            diff = f"{row['max_abs_diff']:.1e}" if "max_abs_diff" in row else "-"
            lines.append(
                f"| {row['system']} | {row['pairs_per_s_median']:.1f} ({row['pairs_per_s_min']:.1f}"
                f"-{row['pairs_per_s_max']:.1f}) | {row['latency_p50_ms']:.0f} / "
                f"{row['latency_p95_ms']:.0f} | {row['ratio_vs_st_median']:.2f}x | "
                f"{row['pct_of_bound_median']:.0f}% | {top} | {tau} | {diff} |"
            )
    if starts:
        lines += [
            "",
            "## Startup (minilm-l6, each in a fresh process)",
            "",
            "| system | import + load s | time to first score s | peak RSS MiB |",
            "|---|---|---|---|",
        ]
        for name, row in starts.items():
            lines.append(
                f"| {name} | {row['load_s']:.1f} | {row['first_score_s']:.1f} | "
                f"{row['peak_rss_mib']:.0f} |"
            )
    lines += [
        "",
        "In-process load seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in load_seconds.items()),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (< 2 min)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per cell (full run)")
    parser.add_argument("--systems", help="comma-separated subset of systems to run")
    parser.add_argument(
        "--with-bf16",
        action="store_true",
        help="also run bf16 where the CPU has no native bf16 (slow)",
    )
    parser.add_argument(
        "--with-overlap",
        action="store_true",
        help="also run ours with overlap_tokenization=True (off by default on the CPU)",
    )
    parser.add_argument(
        "--modernbert",
        action="store_true",
        help="only the ModernBERT of japanese-reranker-xsmall-v2's shape, realistic workload",
    )
    parser.add_argument("--no-startup", action="store_true", help="skip the fresh-process runs")
    parser.add_argument("--corpus", help="NQ-open oracle .jsonl.gz to draw passages from")
    parser.add_argument("--output", default="throughput", help="results file stem")
    args = parser.parse_args(argv)
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")

    import torch

    bf16_native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    facts = c.machine()
    facts["load_start"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    facts["bf16_native"] = bf16_native
    corpus = c.find_corpus(args.corpus)
    facts["corpus"] = str(corpus) if corpus else "synthetic words (NQ-open oracle file not found)"
    cells = plan(args, bf16_native)
    models = c.build_models(sorted({cell.model for cell in cells}))
    started = time.perf_counter()
    load_seconds = measure(cells, models, corpus)
    starts: dict[str, dict[str, float]] = {}
    if not args.no_startup:
        names = ["ours default"]
        if not args.quick:
            names += ["sentence-transformers", REFERENCE]
            names += ["langchain", "llama-index", "ours onnx int8"] + (
                ["ours bf16", "ours torch bf16"] if bf16_native else []
            )
        starts = startup(names, models[cells[0].model], corpus)
    facts["load_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    facts["wall_s"] = time.perf_counter() - started
    tables = {f"{cell.model}/{cell.workload}": summarise(cell) for cell in cells}
    command = "python benchmarks/throughput.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    markdown = render(facts, cells, tables, load_seconds, starts, command.strip())
    data = {
        "machine": facts,
        "cells": tables,
        "load_seconds": load_seconds,
        "startup": starts,
        "workloads": {f"{cell.model}/{cell.workload}": cell.workload_stats for cell in cells},
    }
    md_path, json_path = c.write_results(args.output, markdown, data)
    print("\n" + markdown)
    print(f"Wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
