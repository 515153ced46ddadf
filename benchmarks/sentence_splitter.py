"""Sentence splitter benchmark: 1.6M characters well under a second, and linear growth.

Run from the repository root::

    python benchmarks/sentence_splitter.py

``split_sentences`` runs inside the scorer's worker for every windowed passage; it was
quadratic (a copy of the rest of the text at every ``.``), so 1.6M characters took 17 s.
For each kind of text this prints the seconds for 1.6M characters and the growth from
0.4M to 1.6M characters (4x for a linear splitter, 16x for a quadratic one), which holds
on a busy machine where absolute times do not. Each time is the best of three runs.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from rerank_plugins._text import split_sentences

TEXTS = {
    "english": "Dr. Smith moved to Kyoto in 2019, e.g. for work. He likes it! Does he? Yes. ",
    "japanese": "猫は一日に十二時間ほど眠ります。「はい。そうです。」と言った！本当？",
    "mixed": "富士山は3776 m. The U.S. team climbed it. 新幹線で行きました。\n",
    "one sentence": "word " * 20,
    "a sentence every 3 characters": "a. ",
    "a line every 2 characters": "a\n",
}
SIZES = (400_000, 1_600_000)


def best_of(text: str, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        split_sentences(text)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    print(f"{'text':32} {'1.6M chars (s)':>15} {'growth 0.4M->1.6M':>18}")
    worst = 0.0
    for name, unit in TEXTS.items():
        seconds = []
        for size in SIZES:
            text = (unit * (size // len(unit) + 1))[:size]
            seconds.append(best_of(text))
        growth = seconds[1] / max(seconds[0], 1e-9)
        worst = max(worst, growth)
        print(f"{name:32} {seconds[1]:>15.3f} {growth:>17.1f}x")
    print(f"largest growth for 4x the text: {worst:.1f}x (linear: ~4x, quadratic: ~16x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
