"""Short, realistic and long passages: the CPU default against sentence-transformers (goal 5).

Run from the repository root::

    python benchmarks/passage_lengths.py                # 5 rounds per workload (~10 min)
    python benchmarks/passage_lengths.py --rounds 2 --passages 40 --workloads long

Systems, all loaded in one process and given the same request each round in a rotated order:
sentence-transformers ``CrossEncoder.predict`` (batches of 32), ``ours default`` (ONNX Runtime
fp32: one batch per thread, 512-token batches), ``ours default, before`` (the same session
rebuilt the way it ran before this change: one batch at a time on every thread, 1024-token
batches) and, on the realistic workload, ``ours bf16`` (OpenVINO on a CPU with native bf16)
and ``ours torch bf16``. Each row reports the median of
per-round ratios to sentence-transformers, both in wall time and in process CPU time. CPU time
counts the work done, not the waiting, so it moves less when other processes share the cores
(but it also counts intra-op threads spinning while they wait for each other); the load
average of each round is printed beside it. The share of our time spent tokenizing is measured
on the same requests. The *fp32 ceiling* of each workload is onnxruntime's fp32 GEMM rate on
this machine (measured first, on the model's shapes) over our export's matmul FLOPs per pair:
what any exact fp32 implementation could reach at best, against sentence-transformers.
Results go to ``benchmarks/results/passage_lengths.{md,json}``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
import systems as s

ST = "sentence-transformers"
BEFORE = "ours default, before"


def load_before(model: Path) -> s.System:
    """``ours default`` as it ran before goal 5: one batch at a time on every thread, 1024 tokens.

    Rebuilds the scorer's ONNX Runtime session with ``intra_op_num_threads`` = torch's thread
    count, the setting the scorer used until then, and turns off batches side by side.
    """
    import onnxruntime as ort
    import torch

    os.environ.setdefault("RERANK_PLUGINS_CACHE_DIR", str(s.ONNX_CACHE))
    from rerank_plugins import CrossEncoderScorer

    scorer = CrossEncoderScorer(str(model), device="cpu")
    network = scorer._network
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = torch.get_num_threads()
    network._session = ort.InferenceSession(  # type: ignore[attr-defined]
        str(network.path),  # type: ignore[attr-defined]
        options,
        providers=["CPUExecutionProvider"],
        disabled_optimizers=["SkipLayerNormFusion"],
    )
    scorer._parallel_batches = 1
    scorer.max_batch_tokens = 1024

    def run(request: c.Request) -> tuple[list[float], list[int]]:
        values = scorer.score(request.query, request.passages)
        return values, sorted(range(len(values)), key=lambda i: (-values[i], i))[:5]

    return s.System(BEFORE, run, scorer.close)


def config_and_tokenizer(model: Path) -> tuple[Any, Any]:
    """The benchmark model's config and tokenizer (for token counts and FLOPs)."""
    from transformers import AutoConfig, AutoTokenizer

    return AutoConfig.from_pretrained(model), AutoTokenizer.from_pretrained(model)


def tokenizing_share(model: Path, requests: list[c.Request]) -> float:
    """Seconds our scorer spends tokenizing a request over its seconds to score it (median)."""
    os.environ.setdefault("RERANK_PLUGINS_CACHE_DIR", str(s.ONNX_CACHE))
    from rerank_plugins import CrossEncoderScorer

    scorer = CrossEncoderScorer(str(model), device="cpu")
    shares = []
    for request in requests:
        start = time.perf_counter()
        scorer._encode(scorer._tokenizer, request.query, request.passages)
        encode = time.perf_counter() - start
        start = time.perf_counter()
        scorer.score(request.query, request.passages)
        shares.append(encode / (time.perf_counter() - start))
    scorer.close()
    return statistics.median(shares)


def measure(
    workload: str, names: list[str], loaded: dict[str, s.System], args: argparse.Namespace
) -> dict[str, Any]:
    """Rounds of one workload; per system: wall and CPU seconds, scores, load averages."""
    model = c.build_models(["minilm-l6"])["minilm-l6"]
    requests = [
        c.Request(r.query, r.passages[: args.passages])
        for r in c.make_requests(workload, args.rounds + 1, model_dir=model, corpus=args.corpus)
    ]
    for name in names:  # warm-up on a request that is not timed
        loaded[name].run(c.Request(requests[0].query, requests[0].passages[:16]))
    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    diff: dict[str, float] = dict.fromkeys(names, 0.0)
    loads = []
    for index, request in enumerate(requests[1:]):
        shift = index % len(names)
        scores: dict[str, list[float]] = {}
        for name in names[shift:] + names[:shift]:
            start_cpu, start = time.process_time(), time.perf_counter()
            values, _ = loaded[name].run(request)
            wall[name].append(time.perf_counter() - start)
            cpu[name].append(time.process_time() - start_cpu)
            scores[name] = values or []
        for name in names:
            gap = max(abs(a - b) for a, b in zip(scores[name], scores[ST], strict=True))
            diff[name] = max(diff[name], gap)
        loads.append(os.getloadavg()[0])
        line = "  ".join(f"{n}={len(request.passages) / wall[n][-1]:.1f}" for n in names)
        print(f"{workload} round {index + 1}: load {loads[-1]:.1f}; pairs/s {line}", flush=True)
    rows = []
    for name in names:
        rows.append(
            {
                "system": name,
                "pairs_per_s": len(requests[1].passages) / statistics.median(wall[name]),
                "x_st_wall": statistics.median(
                    st / x for st, x in zip(wall[ST], wall[name], strict=True)
                ),
                "x_st_cpu": statistics.median(
                    st / x for st, x in zip(cpu[ST], cpu[name], strict=True)
                ),
                "max_abs_diff_vs_st": diff[name],
            }
        )
    config, tokenizer = config_and_tokenizer(model)
    tokens = c.describe_requests(requests[1:], tokenizer)["tokens_per_pair"]
    flops = statistics.fmean(c.cls_only_pair_flops(config, n) for n in tokens)
    ceiling = args.gemm_gflops * 1e9 / flops
    return {
        "rows": rows,
        "tokens_mean": statistics.fmean(tokens),
        "ceiling_pairs_per_s": ceiling,
        "ceiling_x_st": ceiling * statistics.median(wall[ST]) / len(requests[1].passages),
        "load_min": min(loads),
        "load_max": max(loads),
        "passages": len(requests[1].passages),
        "tokenizing_share": tokenizing_share(model, requests[1:3]),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="rounds per workload")
    parser.add_argument("--workloads", default="short,realistic,long", help="comma-separated")
    parser.add_argument("--passages", type=int, default=100, help="passages per request")
    parser.add_argument("--no-bf16", action="store_true", help="skip torch bf16 (realistic)")
    parser.add_argument("--corpus", help="NQ-open oracle .jsonl.gz to draw passages from")
    parser.add_argument("--output", default="passage_lengths", help="results file stem")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.passages < 1:
        parser.error("--rounds and --passages must be >= 1")
    args.corpus = c.find_corpus(args.corpus)
    facts = c.machine()
    model = c.build_models(["minilm-l6"])["minilm-l6"]
    threads = int(facts["torch_threads"])
    args.gemm_gflops = c.measure_onnx_matmul_gflops(config_and_tokenizer(model)[0], threads)
    print(f"onnxruntime fp32 GEMM: {args.gemm_gflops:.1f} GFLOP/s on {threads} threads")
    loaded = {
        ST: s.load(ST, model),
        "ours default": s.load("ours default", model),
        BEFORE: load_before(model),
    }
    if not args.no_bf16:
        loaded["ours bf16"] = s.load("ours bf16", model)
        loaded["ours torch bf16"] = s.load("ours torch bf16", model)
    results = {}
    for workload in args.workloads.split(","):
        names = [ST, "ours default", BEFORE]
        if workload == "realistic" and not args.no_bf16:
            names += ["ours bf16", "ours torch bf16"]
        results[workload] = measure(workload, names, loaded, args)
    for system in loaded.values():
        if system.closer is not None:
            system.closer()
    command = "python benchmarks/passage_lengths.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    lines = [
        "# Short, realistic and long passages (issue 12 goal 5)",
        "",
        f"- command: `{command.strip()}`",
        f"- date: {facts['date']}; CPU: {facts['cpu']} ({facts['cores']} cores); torch "
        f"{facts['torch']} ({facts['torch_threads']} threads), onnxruntime {facts['onnxruntime']}",
        "",
        "| workload | system | pairs/s | x ST (wall) | x ST (CPU time) | max abs diff vs ST "
        "| load average | our time tokenizing |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for workload, found in results.items():
        for row in found["rows"]:
            lines.append(
                f"| {workload} ({found['passages']} passages) | {row['system']} | "
                f"{row['pairs_per_s']:.1f} | {row['x_st_wall']:.2f}x | {row['x_st_cpu']:.2f}x | "
                f"{row['max_abs_diff_vs_st']:.1e} | {found['load_min']:.1f}-{found['load_max']:.1f}"
                f" | {100 * found['tokenizing_share']:.1f}% |"
            )
    lines += [
        "",
        f"**fp32 ceiling**: onnxruntime's fp32 GEMM peak here, {args.gemm_gflops:.1f} GFLOP/s "
        f"on {threads} threads, over the matmul FLOPs of our export per pair ([CLS]-only last "
        "layer, its keys and values folded into [CLS]'s query): the rate of an exact fp32 "
        "implementation doing nothing but matmuls at it.",
        "",
        "| workload | mean tokens | ceiling pairs/s | ceiling x ST | 2.0x ST needs |",
        "|---|---|---|---|---|",
    ]
    for workload, found in results.items():
        lines.append(
            f"| {workload} | {found['tokens_mean']:.0f} | {found['ceiling_pairs_per_s']:.1f} | "
            f"{found['ceiling_x_st']:.2f}x | {200 / found['ceiling_x_st']:.0f}% of the ceiling |"
        )
    markdown = "\n".join(lines) + "\n"
    md_path, json_path = c.write_results(
        args.output, markdown, {"machine": facts, "workloads": results}
    )
    print("\n" + markdown)
    print(f"Wrote {md_path} and {json_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
