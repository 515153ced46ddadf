"""The ``rerank-plugins eval`` subcommand: argparse wiring only; the work happens in ``run``."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

# Both modules are standard-library only, so ``--help`` stays fast.
from rerank_plugins._cli_options import (
    add_model_options,
    model_options,
    positive_int,
    usage_errors,
)
from rerank_plugins._text import TOKENIZERS
from rerank_plugins.eval.datasets import FORMATS

__all__ = ["add_parser", "run"]


_DESCRIPTION = """\
Measure a cross-encoder on a retrieval data set: take each query's candidates (BM25
top-k over the corpus, or the data set's own), rerank them, and report nDCG@10, MRR@10,
MAP and Recall@k before and after reranking, with per-query rerank latency.
"""

_EPILOG = """\
examples:
  rerank-plugins eval --data JSQuAD/valid-v1.3.json --format squad \\
      --model hotchpotch/japanese-reranker-cross-encoder-xsmall-v1 --limit 500
  rerank-plugins eval --data scifact --format beir \\
      --model cross-encoder/ms-marco-MiniLM-L6-v2 --json report.json --save-run runs/
"""


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register the ``eval`` subcommand (its handler is :func:`run`, set as ``func``)."""
    parser = subparsers.add_parser(
        "eval",
        help="Measure a reranker (nDCG, MRR, MAP, Recall) on a retrieval data set.",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--data",
        required=True,
        metavar="PATH",
        help="A file, directory or glob (for example 'JaQuAD/jaquad_dev_*.json').",
    )
    data.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        help="Data format: squad (SQuAD/JSQuAD/JaQuAD JSON), beir (a BEIR directory), jqara "
        "(candidates with labels per query, JSONL/CSV) or dpr (question + ctxs JSONL, "
        "e.g. NQ-open).",
    )
    data.add_argument(
        "--split", default="test", help="BEIR qrels split, qrels/SPLIT.tsv (default: test)."
    )
    data.add_argument(
        "--limit", type=positive_int, metavar="N", help="Evaluate only the first N queries."
    )
    stage = parser.add_argument_group("first stage")
    stage.add_argument(
        "--first-stage",
        choices=("bm25", "none"),
        default="bm25",
        help="bm25 (default): BM25 over the whole corpus; none: the data set's own candidates.",
    )
    stage.add_argument(
        "--top-k",
        type=positive_int,
        default=100,
        metavar="K",
        help="Candidates per query to rerank (default: 100).",
    )
    stage.add_argument(
        "--bm25-tokenizer",
        choices=TOKENIZERS,
        default="auto",
        help="auto (default): fugashi for Japanese when installed, else character bigrams.",
    )
    add_model_options(parser)
    output = parser.add_argument_group("output")
    output.add_argument(
        "--json", metavar="OUT", help="Write the report as JSON to OUT ('-' for stdout)."
    )
    output.add_argument(
        "--save-run",
        metavar="DIR",
        help="Write first_stage.run, reranked.run and qrels.txt (TREC format) into DIR.",
    )
    output.add_argument("--no-progress", action="store_true", help="Hide the progress bar.")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run ``eval`` with parsed ``args``; return 0, or raise (``cli.main`` reports errors).

    A data set that cannot be read, or options that do not fit it, raise
    :class:`~rerank_plugins._cli_options.UsageError` (exit status 2) before any model is
    loaded.
    """
    from rerank_plugins._cli_options import UsageError
    from rerank_plugins.eval.datasets import load_dataset
    from rerank_plugins.eval.runner import check_options, evaluate

    _show_progress_messages(logging.getLogger("rerank_plugins.eval"))
    try:
        dataset = load_dataset(args.data, args.format, split=args.split)
    except (OSError, ValueError) as err:
        raise UsageError(str(err)) from err
    sys.stderr.write(f"Loaded {dataset!r}.\n")

    from rerank_plugins import get_scorer

    # Options are checked apart from the run: a ValueError while evaluating is a failure.
    with usage_errors():
        check_options(dataset, first_stage=args.first_stage, top_k=args.top_k, limit=args.limit)
        scorer = get_scorer(args.model, **model_options(args))
    report = evaluate(
        scorer,
        dataset,
        first_stage=args.first_stage,
        top_k=args.top_k,
        limit=args.limit,
        progress=not args.no_progress,
        bm25_tokenizer=args.bm25_tokenizer,
    )

    table_stream = sys.stderr if args.json == "-" else sys.stdout
    table_stream.write(report.format_table() + "\n")
    if args.json:
        text = json.dumps(report.to_dict(), indent=2, ensure_ascii=False) + "\n"
        if args.json == "-":
            sys.stdout.write(text)
        else:
            target = Path(args.json)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            sys.stderr.write(f"Wrote {target}.\n")
    if args.save_run:
        paths = report.save_runs(args.save_run)
        sys.stderr.write("Wrote " + ", ".join(str(p) for p in paths.values()) + ".\n")
    return 0


def _show_progress_messages(logger: logging.Logger) -> None:
    """Print the evaluation's info messages (such as the time estimate) on stderr."""
    if not any(isinstance(handler, _StderrHandler) for handler in logger.handlers):
        logger.addHandler(_StderrHandler())
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)


class _StderrHandler(logging.Handler):
    """Writes each message as a line to the current ``sys.stderr`` (so tests can capture it)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")
