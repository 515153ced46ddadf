"""Abandoned-work benchmark: how long a small request waits behind requests nobody awaits.

Run from the repository root (needs the ``server`` extra)::

    python benchmarks/abandoned.py --model cross-encoder/ms-marco-MiniLM-L6-v2
    python benchmarks/abandoned.py --model ./my-model --requests 3 --documents 300

It serves ``--model`` with ``create_app`` on a loopback uvicorn server, then:

1. ``idle``: a 2-document request on the idle server (the peer every number is compared to);
2. ``after abandoned``: ``--requests`` requests of ``--documents`` documents each, sent at
   once by clients that give up after ``--client-timeout`` seconds, then the same
   2-document request; its latency is reported, with the ratio to ``idle``.

Before issue 9, the abandoned requests were scored in full, so the small request waited for
all of them (about 54 s for 3 x 300 documents of MiniLM-L6 on 2 cores). Now the server
cancels a request's job when its client disconnects.
"""

from __future__ import annotations

import argparse
import random
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from rerank_plugins import CrossEncoderScorer
from rerank_plugins.server.app import create_app
from tests._servers import serve_in_thread

_WORDS = [
    "the",
    "river",
    "city",
    "museum",
    "opened",
    "in",
    "a",
    "year",
    "when",
    "trade",
    "along",
    "the",
    "coast",
    "grew",
    "and",
    "the",
    "old",
    "harbour",
    "was",
    "rebuilt",
    "by",
    "engineers",
    "who",
    "studied",
    "bridges",
    "roads",
    "and",
    "canals",
    "across",
    "europe",
]


def passages(count: int, words: int, seed: int = 0) -> list[str]:
    """``count`` synthetic passages of ``words`` words each (deterministic)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(_WORDS) for _ in range(words)) for _ in range(count)]


def small_request(url: str) -> float:
    """Seconds for a 2-document request."""
    start = time.perf_counter()
    response = httpx.post(
        f"{url}/v1/rerank",
        json={"query": "when was the harbour rebuilt", "documents": passages(2, 40, seed=1)},
        timeout=600,
    )
    response.raise_for_status()
    return time.perf_counter() - start


def abandon(url: str, documents: list[str], timeout: float, outcomes: list[str]) -> None:
    """Send a request and give up after ``timeout`` seconds, as an impatient client does."""
    try:
        response = httpx.post(
            f"{url}/v1/rerank",
            json={"query": "who studied the bridges", "documents": documents},
            timeout=timeout,
        )
    except httpx.TimeoutException:
        outcomes.append("gave up")
        return
    outcomes.append(f"answered {response.status_code}")


def main() -> None:
    """Run the scenario and print a small table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="Hub id or local path.")
    parser.add_argument("--requests", type=int, default=3, help="Abandoned requests.")
    parser.add_argument("--documents", type=int, default=300, help="Documents per request.")
    parser.add_argument("--words", type=int, default=80, help="Words per document.")
    parser.add_argument("--client-timeout", type=float, default=1.5, help="Seconds.")
    parser.add_argument(
        "--max-queue-seconds",
        type=float,
        default=30.0,
        help="The server's admission bound; 0 turns it off, to measure cancellation alone.",
    )
    args = parser.parse_args()

    scorer = CrossEncoderScorer(args.model)
    documents = passages(args.documents, args.words)
    outcomes: list[str] = []
    options = {"max_queue_seconds": args.max_queue_seconds or None}
    try:
        app = create_app(scorer, **options)
    except TypeError:  # a version without the option: measure the old behaviour
        app = create_app(scorer)
    with serve_in_thread(app) as url:
        small_request(url)  # warm-up
        idle = small_request(url)
        threads = [
            threading.Thread(target=abandon, args=(url, documents, args.client_timeout, outcomes))
            for _ in range(args.requests)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        waited = small_request(url)
    scorer.close()
    print(
        f"model {args.model} (backend {scorer.backend}), {args.requests} abandoned requests "
        f"x {args.documents} documents of {args.words} words, clients give up after "
        f"{args.client_timeout:g} s, max_queue_seconds {args.max_queue_seconds:g}"
    )
    print(f"abandoned requests: {', '.join(sorted(outcomes))}")
    print("| 2-document request | seconds | x idle |")
    print("|---|---|---|")
    print(f"| idle server | {idle:.2f} | 1.0 |")
    print(f"| after the abandoned requests | {waited:.2f} | {waited / idle:.0f} |")


if __name__ == "__main__":
    main()
