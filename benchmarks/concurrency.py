"""Concurrency benchmark: 16 threads calling one shared scorer at once.

Run from the repository root::

    python benchmarks/concurrency.py           # full run (~8-10 min on 2 cores)
    python benchmarks/concurrency.py --quick   # smoke run (< 2 min)

Each round runs three modes on the same 16 requests (1 query x N passages each):

- ``ours serial``: one thread calls ``scorer.score`` 16 times, one request after another;
- ``ours 16 threads``: 16 threads call the same scorer at once (its worker coalesces them);
- ``sentence-transformers 16 threads``: 16 threads call one ``CrossEncoder.predict`` at once;
- ``ours 16 threads, overlap`` (``--with-overlap``): 16 threads with
  ``overlap_tokenization=True`` (the next round is tokenized while the current one runs).

It reports throughput and per-request latency (from the common start to each caller's
result), checks that every concurrent result equals the serial one, and writes
``benchmarks/results/concurrency.{md,json}``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
import systems as s

THREADS = 16
OVERLAP = "ours 16 threads, overlap"


def run_concurrent(
    call: Any, requests: list[c.Request]
) -> tuple[float, list[float], list[Any], list[BaseException]]:
    """Call ``call(request)`` from one thread per request, all released together."""
    barrier = threading.Barrier(len(requests) + 1)
    latencies: list[float] = [0.0] * len(requests)
    results: list[Any] = [None] * len(requests)
    errors: list[BaseException] = []
    start = 0.0

    def worker(index: int) -> None:
        barrier.wait()
        try:
            results[index] = call(requests[index])
        except Exception as err:  # a peer failing under concurrency is a result too
            errors.append(err)
        latencies[index] = time.perf_counter() - start

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    start = time.perf_counter()
    barrier.wait()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, latencies, results, errors


def run_serial(call: Any, requests: list[c.Request]) -> tuple[float, list[float], list[Any]]:
    """Call ``call(request)`` for each request in turn; latency counts from the common start."""
    latencies, results = [], []
    start = time.perf_counter()
    for request in requests:
        results.append(call(request))
        latencies.append(time.perf_counter() - start)
    return time.perf_counter() - start, latencies, results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run (< 2 min)")
    parser.add_argument("--rounds", type=int, default=2, help="rounds (full run)")
    parser.add_argument("--passages", type=int, default=100, help="passages per request")
    parser.add_argument("--corpus", help="NQ-open oracle .jsonl.gz to draw passages from")
    parser.add_argument("--output", default="concurrency", help="results file stem")
    parser.add_argument(
        "--with-overlap",
        action="store_true",
        help="also run 16 threads with overlap_tokenization=True (off by default on the CPU)",
    )
    args = parser.parse_args(argv)
    rounds, passages = (1, 10) if args.quick else (args.rounds, args.passages)

    facts = c.machine()
    facts["load_start"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    corpus = c.find_corpus(args.corpus)
    model = c.build_models(["minilm-l6"])["minilm-l6"]
    requests = c.make_requests("realistic", THREADS * rounds + 1, model_dir=model, corpus=corpus)
    requests = [c.Request(r.query, r.passages[:passages]) for r in requests]
    ours = s.load("ours default", model)
    st = s.load("sentence-transformers", model)
    overlap = s.load("ours default, overlap", model) if args.with_overlap else None

    def our_scores(request: c.Request) -> list[float]:
        scores, _ = ours.run(request)
        return scores or []

    def st_scores(request: c.Request) -> list[float]:
        scores, _ = st.run(request)
        return scores or []

    def overlap_scores(request: c.Request) -> list[float]:
        scores, _ = overlap.run(request) if overlap else (None, None)
        return scores or []

    our_scores(requests[-1])  # warm-up
    st_scores(requests[-1])
    modes = ["ours serial", "ours 16 threads", "sentence-transformers 16 threads"]
    if overlap:
        overlap_scores(requests[-1])
        modes.append(OVERLAP)
    seconds: dict[str, list[float]] = {m: [] for m in modes}
    latencies: dict[str, list[float]] = {m: [] for m in modes}
    errors: dict[str, list[str]] = {m: [] for m in modes}
    max_diff = 0.0
    mismatches = 0
    for round_index in range(rounds):
        batch = requests[round_index * THREADS : (round_index + 1) * THREADS]
        serial_s, serial_lat, serial = run_serial(our_scores, batch)
        conc_s, conc_lat, concurrent, conc_err = run_concurrent(our_scores, batch)
        st_s, st_lat, _, st_err = run_concurrent(st_scores, batch)
        timings = [
            ("ours serial", serial_s, serial_lat),
            ("ours 16 threads", conc_s, conc_lat),
            ("sentence-transformers 16 threads", st_s, st_lat),
        ]
        pairs_to_check = list(zip(serial, concurrent, strict=True))
        if overlap:
            ovl_s, ovl_lat, overlapped, ovl_err = run_concurrent(overlap_scores, batch)
            timings.append((OVERLAP, ovl_s, ovl_lat))
            errors[OVERLAP] += [repr(e) for e in ovl_err]
            pairs_to_check += zip(serial, overlapped, strict=True)
        for mode, sec, lat in timings:
            seconds[mode].append(sec)
            latencies[mode].extend(lat)
        errors["ours 16 threads"] += [repr(e) for e in conc_err]
        errors["sentence-transformers 16 threads"] += [repr(e) for e in st_err]
        for a, b in pairs_to_check:
            if b is None:
                mismatches += 1
                continue
            diff = max(abs(x - y) for x, y in zip(a, b, strict=True))
            max_diff = max(max_diff, diff)
            mismatches += c.top_k(a) != c.top_k(b) or diff > 1e-5
        line = "  ".join(f"{m}={THREADS * passages / seconds[m][-1]:.1f}" for m in modes)
        print(f"round {round_index + 1}/{rounds} pairs/s: {line}", flush=True)
    ours.closer and ours.closer()  # type: ignore[func-returns-value]
    if overlap and overlap.closer:
        overlap.closer()
    facts["load_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())

    pairs = THREADS * passages
    checked = THREADS * rounds * (2 if overlap else 1)
    rows = []
    for mode in modes:
        vs_serial = [a / b for a, b in zip(seconds["ours serial"], seconds[mode], strict=True)]
        vs_st = [
            a / b
            for a, b in zip(seconds["sentence-transformers 16 threads"], seconds[mode], strict=True)
        ]
        rows.append(
            {
                "mode": mode,
                "pairs_per_s_median": statistics.median(pairs / x for x in seconds[mode]),
                "pairs_per_s_min": min(pairs / x for x in seconds[mode]),
                "pairs_per_s_max": max(pairs / x for x in seconds[mode]),
                "latency_p50_ms": 1000 * c.percentile(latencies[mode], 0.5),
                "latency_p95_ms": 1000 * c.percentile(latencies[mode], 0.95),
                "vs_ours_serial": statistics.median(vs_serial),
                "vs_st_16_threads": statistics.median(vs_st),
                "errors": len(errors[mode]),
            }
        )
    command = "python benchmarks/concurrency.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    lines = [
        "# rerank-plugins concurrency benchmark",
        "",
        f"- command: `{command.strip()}`",
        f"- date: {facts['date']}; CPU: {facts['cpu']} ({facts['cores']} cores); load average "
        f"at start/end: {facts['load_start']} / {facts['load_end']}; torch {facts['torch']}",
        f"- {THREADS} callers x {passages} passages (realistic lengths), {rounds} round(s); "
        "latency counts from the moment all callers are released",
        f"- concurrent results equal to serial ones: {checked - mismatches}/"
        f"{checked} (max abs score difference {max_diff:.1e}; equal means top-5 "
        "identical and every score within 1e-5)",
        "",
        "| mode | pairs/s median (min-max) | request p50 / p95 ms | x ours serial "
        "| x sentence-transformers 16 threads | errors |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['mode']} | {row['pairs_per_s_median']:.1f} ({row['pairs_per_s_min']:.1f}-"
            f"{row['pairs_per_s_max']:.1f}) | {row['latency_p50_ms']:.0f} / "
            f"{row['latency_p95_ms']:.0f} | {row['vs_ours_serial']:.2f}x | "
            f"{row['vs_st_16_threads']:.2f}x | {row['errors']} |"
        )
    markdown = "\n".join(lines) + "\n"
    data = {
        "machine": facts,
        "rows": rows,
        "max_abs_diff": max_diff,
        "mismatches": mismatches,
        "errors": errors,
        "seconds": seconds,
    }
    md_path, json_path = c.write_results(args.output, markdown, data)
    print("\n" + markdown)
    print(f"Wrote {md_path} and {json_path}")
    return 1 if mismatches else 0


if __name__ == "__main__":
    raise SystemExit(main())
