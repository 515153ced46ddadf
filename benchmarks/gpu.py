"""GPU benchmark in one command: speed against sentence-transformers, peak share, OOM, callers.

Run from the repository root on a machine with one CUDA GPU (about 5-8 min on an H200)::

    python benchmarks/gpu.py
    python benchmarks/gpu.py --model path/to/cross-encoder --rounds 5
    python benchmarks/gpu.py --dry-run      # the same steps, tiny, on the CPU (checks the script)

Steps, each reported in ``benchmarks/results/gpu.{md,json}``:

1. **Speed** on the realistic workload (requests of 1 query x 100 passages, 42-512 tokens):
   ours (``dtype="auto"``: bf16; and ``dtype="float16"``) against sentence-transformers
   ``CrossEncoder`` in fp16 and bf16 (``model_kwargs={"torch_dtype": ...}``), in rotated
   order per round, as the median of per-round ratios. Each round scores ``--requests /
   --rounds`` requests; ours with up to 16 in flight (a server's burst, which its worker
   batches together) and one at a time, sentence-transformers one ``predict`` per request.
   Ours runs with ``overlap_tokenization=True`` (the CUDA default: the next round is
   tokenized while the GPU runs the current one) and, as ``ours bf16, no overlap``, without;
   the report gives the median per-round ratio of the two.
2. **Share of the GPU's bf16 dense peak**: pairs/s x matmul FLOPs per pair (the workload's
   mean) over the peak (known for H200/H100/A100/L4/L40S; ``--peak-tflops`` otherwise).
3. **A real CUDA OOM, recovered**: the process's memory is capped
   (``torch.cuda.set_per_process_memory_fraction``) and one batch of long pairs is made
   larger than the cap allows; the scorer must split it (its warning is counted) and return
   the scores that ordinary batches give.
4. **16 concurrent callers** against the same 16 requests one after another: throughput
   ratio, and the results must agree (same top-5; scores within bf16 noise). The overlap is
   on here too (also in ``--dry-run``, where the CPU default would turn it off).
5. **The packed path equals transformers on CUDA**: our torch backend (padding-free dense
   layers, [CLS]-only last layer) against ``AutoModelForSequenceClassification`` on the
   same padded pairs, fp32 (max logit difference) and bf16.

Without CUDA the script stops with a message (exit status 2) unless ``--dry-run`` is given.
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c

# Dense (no sparsity) bf16 peak TFLOP/s by device-name fragment (vendor data sheets).
BF16_PEAK_TFLOPS = {
    "H200": 989.4,
    "H100 SXM": 989.4,
    "H100 PCIe": 756.0,
    "H100": 989.4,
    "A100": 312.0,
    "L40S": 362.1,
    "L4": 121.0,
}
OURS = ("ours bf16", "ours fp16")
SERIAL = "ours bf16, one request at a time"
NO_OVERLAP = "ours bf16, no overlap"
PEERS = ("sentence-transformers fp16", "sentence-transformers bf16")
NO_CUDA = (
    "benchmarks/gpu.py needs a CUDA GPU, and torch.cuda.is_available() is False here "
    "(torch {version}). Run it on a GPU machine, or pass --dry-run to check the script on the CPU."
)


class _OomCounter(logging.Handler):
    """Counts the scorer's 'CUDA out of memory ... retrying in halves' warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "out of memory" in record.getMessage():
            self.count += 1


def peak_tflops(name: str, explicit: float | None) -> float | None:
    """The bf16 dense peak of the device called ``name``, or ``explicit`` if given."""
    if explicit is not None:
        return explicit
    return next((peak for key, peak in BF16_PEAK_TFLOPS.items() if key in name), None)


def load_systems(model: Path, device: str, dry_run: bool) -> dict[str, Any]:
    """Each system as ``score(list of requests) -> list of score lists``."""
    import torch
    from sentence_transformers import CrossEncoder

    from rerank_plugins import CrossEncoderScorer

    systems: dict[str, Any] = {}
    dtypes = {"bf16": torch.bfloat16, "fp16": torch.float16}
    for name in (*OURS, NO_OVERLAP, SERIAL):
        dtype = "float32" if dry_run else ("float16" if "fp16" in name else "bfloat16")
        scorer = CrossEncoderScorer(
            str(model),
            device=device,
            dtype=dtype,
            backend="torch",
            overlap_tokenization=name != NO_OVERLAP,
        )
        callers = 1 if name == SERIAL else 16

        def ours(
            requests: list[c.Request], scorer: Any = scorer, callers: int = callers
        ) -> list[list[float]]:
            # A server's burst: up to 16 requests in flight, which the worker batches together.
            with ThreadPoolExecutor(callers) as pool:
                return list(pool.map(lambda r: scorer.score(r.query, r.passages), requests))

        systems[name] = ours
    for name in PEERS:
        dtype = torch.float32 if dry_run else dtypes[name.rsplit(" ", 1)[1]]
        encoder = CrossEncoder(str(model), device=device, model_kwargs={"torch_dtype": dtype})

        def peer(requests: list[c.Request], encoder: Any = encoder) -> list[list[float]]:
            return [
                [float(x) for x in encoder.predict([(r.query, p) for p in r.passages])]
                for r in requests
            ]

        systems[name] = peer
    return systems


def speed(
    systems: dict[str, Any], requests: list[c.Request], rounds: int, sync: Any
) -> dict[str, Any]:
    """Rotated rounds; per-system pairs/s and the median per-round ratio to each peer."""
    per_round = len(requests) // rounds
    seconds: dict[str, list[float]] = {name: [] for name in systems}
    names = list(systems)
    for name in names:  # warm-up: kernels, allocator, cuBLAS handles
        systems[name](requests[:1])
    for index in range(rounds):
        batch = requests[index * per_round : (index + 1) * per_round]
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            sync()
            start = time.perf_counter()
            systems[name](batch)
            sync()
            seconds[name].append(time.perf_counter() - start)
    pairs = sum(len(r.passages) for r in requests[:per_round])
    result: dict[str, Any] = {}
    for name in names:
        row: dict[str, Any] = {"pairs_s": pairs / statistics.median(seconds[name])}
        for peer in (*PEERS, NO_OVERLAP):
            if peer in seconds:
                ratios = [p / s for p, s in zip(seconds[peer], seconds[name], strict=True)]
                row[f"x {peer}"] = statistics.median(ratios)
        result[name] = row
    return result


def oom_recovery(
    model: Path, device: str, requests: list[c.Request], dry_run: bool
) -> dict[str, Any]:
    """Force a real CUDA OOM in one oversized batch; the scorer must split and match."""
    import torch

    from rerank_plugins import CrossEncoderScorer

    passages = [p for r in requests for p in r.passages]
    long_pairs = sorted(passages, key=lambda p: -len(p.split()))[: 8 if dry_run else 1024]
    query = requests[0].query
    counter = _OomCounter()
    logging.getLogger("rerank_plugins.scorer._forward").addHandler(counter)
    dtype = "float32" if dry_run else "bfloat16"
    ordinary = CrossEncoderScorer(str(model), device=device, dtype=dtype, backend="torch")
    expected = ordinary.score(query, long_pairs)
    ordinary.close()
    huge = CrossEncoderScorer(
        str(model),
        device=device,
        dtype=dtype,
        backend="torch",
        batch_size=len(long_pairs),
        max_batch_tokens=len(long_pairs) * 512,
    )
    cap = None
    if not dry_run:
        torch.cuda.synchronize()
        total = torch.cuda.get_device_properties(device).total_memory
        # Room for the weights and ~2 GiB of activations: a batch of 1024 x 512 tokens needs more.
        cap = (torch.cuda.memory_allocated(device) + 2 * 2**30) / total
        torch.cuda.set_per_process_memory_fraction(cap, device)
    try:
        got = huge.score(query, long_pairs)
    finally:
        if cap is not None:
            torch.cuda.set_per_process_memory_fraction(1.0, device)
        huge.close()
        logging.getLogger("rerank_plugins.scorer._forward").removeHandler(counter)
    diff = max(abs(a - b) for a, b in zip(expected, got, strict=True))
    return {
        "pairs": len(long_pairs),
        "memory_fraction_cap": cap,
        "oom_splits": counter.count,
        "max_abs_diff_vs_ordinary_batches": diff,
        "top5_same": c.top_k(expected) == c.top_k(got),
        "ok": (counter.count > 0 or dry_run) and diff < 2e-2,
    }


def concurrency(
    model: Path, device: str, requests: list[c.Request], dry_run: bool
) -> dict[str, Any]:
    """16 threads each scoring one request at once, against the same requests one by one."""
    from rerank_plugins import CrossEncoderScorer

    dtype = "float32" if dry_run else "bfloat16"
    scorer = CrossEncoderScorer(
        str(model), device=device, dtype=dtype, backend="torch", overlap_tokenization=True
    )
    work = requests[:16]
    scorer.score(work[0].query, work[0].passages)  # warm-up
    start = time.perf_counter()
    serial = [scorer.score(r.query, r.passages) for r in work]
    serial_s = time.perf_counter() - start
    gate = threading.Barrier(len(work))

    def call(request: c.Request) -> list[float]:
        gate.wait()
        return scorer.score(request.query, request.passages)

    with ThreadPoolExecutor(len(work)) as pool:
        start = time.perf_counter()
        parallel = list(pool.map(call, work))
        parallel_s = time.perf_counter() - start
    scorer.close()
    diff = max(
        abs(a - b) for s, p in zip(serial, parallel, strict=True) for a, b in zip(s, p, strict=True)
    )
    same = sum(c.top_k(s) == c.top_k(p) for s, p in zip(serial, parallel, strict=True))
    return {
        "callers": len(work),
        "x serial": serial_s / parallel_s,
        "serial_s": serial_s,
        "concurrent_s": parallel_s,
        "top5_same": f"{same}/{len(work)}",
        "max_abs_diff": diff,
    }


def packed_equals_transformers(
    model: Path, device: str, requests: list[c.Request]
) -> dict[str, Any]:
    """Our torch backend's logits against transformers' on the same pairs (fp32 and bf16)."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from rerank_plugins import CrossEncoderScorer

    tokenizer = AutoTokenizer.from_pretrained(model)
    query, passages = requests[0].query, requests[0].passages[:64]
    result: dict[str, Any] = {}
    for label, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        reference = AutoModelForSequenceClassification.from_pretrained(model, torch_dtype=dtype)
        reference = reference.to(device).eval()
        ours = CrossEncoderScorer(
            str(model),
            device=device,
            dtype=str(dtype).removeprefix("torch."),
            backend="torch",
            activation="none",
        )
        inputs = tokenizer(
            [query] * len(passages),
            passages,
            truncation="only_second",
            max_length=ours.max_length,
            padding=True,
            return_tensors="pt",
        ).to(device)
        with torch.inference_mode():
            expected = reference(**inputs).logits[:, 0].float().cpu().tolist()
        got = ours.score(query, passages)
        ours.close()
        result[label] = max(abs(a - b) for a, b in zip(expected, got, strict=True))
    result["ok"] = result["fp32"] < 1e-3 and result["bf16"] < 0.1
    return result


def render(report: dict[str, Any]) -> str:
    """The markdown report."""
    facts = report["machine"]
    lines = [
        "# GPU benchmark",
        "",
        f"{facts['date']}: {facts['device']} ({facts['device_memory_gib']:.0f} GiB), "
        f"torch {facts['torch']}, CUDA {facts['cuda']}; model {facts['model']}; "
        f"{facts['requests']} realistic requests (1 query x 100 passages), "
        f"{facts['rounds']} rounds."
        + (" DRY RUN on the CPU: not a measurement." if facts["dry_run"] else ""),
        "",
        f"Command: `{facts['command']}`",
        "",
        "| system | pairs/s | x ST fp16 | x ST bf16 | TFLOP/s | % of bf16 dense peak |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in report["speed"].items():
        share = row.get("peak_pct")
        lines.append(
            f"| {name} | {row['pairs_s']:.0f} | {row['x sentence-transformers fp16']:.2f}x "
            f"| {row['x sentence-transformers bf16']:.2f}x | {row['tflops']:.1f} "
            f"| {'-' if share is None else f'{share:.1f}%'} |"
        )
    overlap = report["speed"].get("ours bf16", {}).get(f"x {NO_OVERLAP}")
    if overlap is not None:
        lines += [
            "",
            f"**overlap**: ours bf16 (tokenizing the next round while the device runs) at "
            f"{overlap:.2f}x ours bf16 without the overlap (median per-round ratio).",
        ]
    for step in ("oom", "concurrency", "packed"):
        lines += ["", f"**{step}**: `{json.dumps(report[step], default=str)}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", help="cross-encoder directory (default: MiniLM-L6 + head)")
    parser.add_argument("--requests", type=int, default=400, help="realistic requests in all")
    parser.add_argument("--rounds", type=int, default=5, help="speed rounds")
    parser.add_argument("--peak-tflops", type=float, help="the GPU's bf16 dense peak, TFLOP/s")
    parser.add_argument("--corpus", help="NQ-open oracle .jsonl.gz to draw passages from")
    parser.add_argument("--dry-run", action="store_true", help="tiny run on the CPU (no numbers)")
    parser.add_argument("--output", default="gpu", help="results file stem")
    args = parser.parse_args(argv)
    if args.requests < args.rounds or args.rounds < 1:
        parser.error("--rounds must be >= 1 and --requests >= --rounds")

    import torch

    if not args.dry_run and not torch.cuda.is_available():
        sys.stderr.write(NO_CUDA.format(version=torch.__version__) + "\n")
        return 2
    device = "cpu" if args.dry_run else "cuda"
    if args.dry_run:
        args.requests, args.rounds = 16, 2
    model = Path(args.model) if args.model else c.build_model("minilm-l6", layers=6)
    corpus = c.find_corpus(args.corpus)
    requests = c.make_requests("realistic", args.requests, model_dir=model, corpus=corpus)
    if args.dry_run:
        requests = [c.Request(r.query, r.passages[:8]) for r in requests]
    from transformers import AutoConfig, AutoTokenizer

    config, tokenizer = AutoConfig.from_pretrained(model), AutoTokenizer.from_pretrained(model)
    stats = c.describe_requests(requests[:20], tokenizer)
    flops = statistics.fmean(c.pair_flops(config, n) for n in stats.pop("tokens_per_pair"))
    facts = c.machine() | {
        "model": str(model),
        "requests": len(requests),
        "rounds": args.rounds,
        "dry_run": args.dry_run,
        "workload": stats,
        "command": "python benchmarks/gpu.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu (dry run)",
        "device_memory_gib": (
            torch.cuda.get_device_properties(0).total_memory / 2**30 if device == "cuda" else 0.0
        ),
        "cuda": torch.version.cuda,
    }
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    started = time.perf_counter()
    systems = load_systems(model, device, args.dry_run)
    table = speed(systems, requests, args.rounds, sync)
    peak = peak_tflops(facts["device"], args.peak_tflops)
    for row in table.values():
        row["tflops"] = row["pairs_s"] * flops / 1e12
        row["peak_pct"] = None if peak is None else 100.0 * row["tflops"] / peak
    del systems
    report = {
        "machine": facts,
        "speed": table,
        "oom": oom_recovery(model, device, requests, args.dry_run),
        "concurrency": concurrency(model, device, requests, args.dry_run),
        "packed": packed_equals_transformers(model, device, requests),
    }
    facts["wall_s"] = time.perf_counter() - started
    markdown = render(report)
    md_path, json_path = c.write_results(args.output, markdown, report)
    print("\n" + markdown)
    print(f"Wrote {md_path} and {json_path}")
    return 0 if report["oom"]["ok"] and report["packed"]["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
