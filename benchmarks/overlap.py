"""A/B benchmark of ``overlap_tokenization``: 16 callers on one scorer, with and without it.

Run from the repository root::

    python benchmarks/overlap.py             # 8 rounds, ~5 min on 2 busy cores
    python benchmarks/overlap.py --quick     # 2 rounds, < 2 min

Each round gives each (backend, overlap) pair the same 16 new requests (1 query x N
passages each, realistic lengths) from 16 threads at once, in a rotated order, so that
the machine's drift hits every mode alike; the report quotes the median of per-round
ratios "overlap on / overlap off" of one backend. Scores must be equal with and without
the overlap. Writes ``benchmarks/results/overlap.{md,json}``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _common as c
from concurrency import THREADS, run_concurrent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds (< 2 min)")
    parser.add_argument("--rounds", type=int, default=8, help="rounds (full run)")
    parser.add_argument("--passages", type=int, default=20, help="passages per request")
    parser.add_argument("--corpus", help="NQ-open oracle .jsonl.gz to draw passages from")
    parser.add_argument("--output", default="overlap", help="results file stem")
    args = parser.parse_args(argv)
    rounds = 2 if args.quick else args.rounds

    from rerank_plugins import CrossEncoderScorer

    facts = c.machine()
    facts["load_start"] = " ".join(f"{x:.1f}" for x in os.getloadavg())
    model = c.build_models(["minilm-l6"])["minilm-l6"]
    corpus = c.find_corpus(args.corpus)
    requests = c.make_requests("realistic", THREADS * rounds + 1, model_dir=model, corpus=corpus)
    requests = [c.Request(r.query, r.passages[: args.passages]) for r in requests]
    backends = {"default (ONNX fp32)": "auto", "torch fp32": "torch"}
    scorers = {
        (label, overlap): CrossEncoderScorer(
            str(model), device="cpu", backend=backend, overlap_tokenization=overlap
        )
        for label, backend in backends.items()
        for overlap in (False, True)
    }
    for scorer in scorers.values():  # warm-up
        scorer.score(requests[-1].query, requests[-1].passages)
    seconds: dict[tuple[str, bool], list[float]] = {mode: [] for mode in scorers}
    results: dict[tuple[str, bool], list[list[float]]] = {mode: [] for mode in scorers}
    modes = list(scorers)
    for index in range(rounds):
        batch = requests[index * THREADS : (index + 1) * THREADS]
        shift = index % len(modes)
        for mode in modes[shift:] + modes[:shift]:
            scorer = scorers[mode]
            elapsed, _, scores, errors = run_concurrent(
                lambda r, scorer=scorer: scorer.score(r.query, r.passages), batch
            )
            if errors:
                raise errors[0]
            seconds[mode].append(elapsed)
            results[mode].extend(scores)
        pairs = THREADS * args.passages
        line = "  ".join(
            f"{m[0]}{' +overlap' if m[1] else ''}={pairs / seconds[m][-1]:.1f}" for m in modes
        )
        print(f"round {index + 1}/{rounds} pairs/s: {line}", flush=True)
    for scorer in scorers.values():
        scorer.close()
    facts["load_end"] = " ".join(f"{x:.1f}" for x in os.getloadavg())

    rows = []
    max_diff = 0.0
    for label in backends:
        off, on = seconds[(label, False)], seconds[(label, True)]
        for a, b in zip(results[(label, False)], results[(label, True)], strict=True):
            max_diff = max(max_diff, *(abs(x - y) for x, y in zip(a, b, strict=True)))
        ratios = [o / n for o, n in zip(off, on, strict=True)]
        pairs = THREADS * args.passages
        rows.append(
            {
                "backend": label,
                "off_pairs_s_median": statistics.median(pairs / x for x in off),
                "on_pairs_s_median": statistics.median(pairs / x for x in on),
                "ratio_median": statistics.median(ratios),
                "ratio_min": min(ratios),
                "ratio_max": max(ratios),
            }
        )
    command = "python benchmarks/overlap.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "# rerank-plugins overlap_tokenization benchmark",
        "",
        f"- command: `{command.strip()}`",
        f"- date: {facts['date']}; CPU: {facts['cpu']} ({facts['cores']} cores); load average "
        f"at start/end: {facts['load_start']} / {facts['load_end']}; torch {facts['torch']}",
        f"- {THREADS} callers x {args.passages} passages (realistic lengths), {rounds} rounds, "
        f"order rotated; max abs score difference on/off: {max_diff:.1e}",
        "",
        "| backend | off pairs/s | on pairs/s | on / off, median per round (min-max) |",
        "|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row['backend']} | {row['off_pairs_s_median']:.1f} | "
            f"{row['on_pairs_s_median']:.1f} | {row['ratio_median']:.2f}x "
            f"({row['ratio_min']:.2f}-{row['ratio_max']:.2f}) |"
        )
    markdown = "\n".join(lines) + "\n"
    data = {"machine": facts, "rows": rows, "max_abs_diff": max_diff}
    md_path, json_path = c.write_results(args.output, markdown, data)
    print("\n" + markdown)
    print(f"Wrote {md_path} and {json_path}")
    return 0 if max_diff <= 1e-5 else 1


if __name__ == "__main__":
    raise SystemExit(main())
