"""The ``rerank-plugins`` command: ``score``, ``models``, ``serve`` and ``eval``.

Each subcommand imports what it needs when it runs, so ``--help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from rerank_plugins._cli_options import add_model_options, model_options, positive_int
from rerank_plugins._version import __version__


def _add_score_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "score",
        help="Rerank passages for one query and print JSON results, best first.",
        description=(
            "Rerank passages for one query. Passages come from the arguments, or one per line "
            "from --file (- for standard input)."
        ),
    )
    add_model_options(parser)
    parser.add_argument("--query", required=True, help="The query.")
    parser.add_argument("passages", nargs="*", help="Passages to rerank.")
    parser.add_argument("--file", help="Read passages from this file, one per line (- = stdin).")
    parser.add_argument("--top-n", type=positive_int, metavar="N", help="Keep only the best N.")
    context = parser.add_argument_group("context")
    context.add_argument(
        "--max-context-tokens",
        type=positive_int,
        metavar="N",
        help="Keep the best passages whose tokens add up to at most N.",
    )
    context.add_argument(
        "--tokenizer",
        metavar="NAME",
        help="Count tokens with this tiktoken encoding or Hugging Face tokenizer "
        "(default: the model's own tokenizer).",
    )
    context.add_argument(
        "--deduplicate", action="store_true", help="Drop duplicate passages before scoring."
    )
    context.add_argument(
        "--order",
        choices=("relevance", "long_context"),
        default="relevance",
        help="relevance (default: best first) or long_context (best first and last).",
    )
    parser.set_defaults(run=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    from rerank_plugins.scorer import get_scorer

    passages = list(args.passages)
    if args.file:
        stream = sys.stdin if args.file == "-" else open(args.file, encoding="utf-8")  # noqa: SIM115
        with stream:
            passages.extend(line.rstrip("\n") for line in stream if line.strip())
    if not passages:
        msg = "rerank-plugins score: error: no passages; give them as arguments or with --file."
        raise SystemExit(msg)
    scorer = get_scorer(args.model, **model_options(args))
    results = scorer.rank(
        args.query,
        passages,
        top_n=args.top_n,
        max_context_tokens=args.max_context_tokens,
        length_function=args.tokenizer,
        deduplicate=args.deduplicate,
        order=args.order,
    )
    payload = [
        {"index": r.index, "score": r.score, "text": r.text}
        | ({"tokens": r.tokens} if r.tokens is not None else {})
        | ({"duplicates": list(r.duplicates)} if r.duplicates else {})
        for r in results
    ]
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    return 0


def _add_models_parser(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "models",
        help="List the preset model names.",
        description="List the preset names accepted wherever a model is expected.",
    )
    parser.add_argument("--language", help="Only presets for this language (e.g. en, ja).")
    parser.add_argument("--json", action="store_true", help="Print JSON instead of a table.")
    parser.set_defaults(run=_run_models)


def _run_models(args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from rerank_plugins.presets import PRESETS

    presets = [p for p in PRESETS.values() if not args.language or args.language in p.language]
    if args.json:
        sys.stdout.write(json.dumps([asdict(p) for p in presets], indent=2) + "\n")
        return 0
    rows = [("preset", "model", "language", "layers/hidden", "max_length", "extra")]
    rows += [
        (p.name, p.model, p.language, p.size, str(p.max_length), p.extra or "") for p in presets
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
        sys.stdout.write("\n")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Build the full argument parser."""
    from rerank_plugins.eval import _command as eval_command
    from rerank_plugins.server import _command as serve_command

    parser = argparse.ArgumentParser(
        prog="rerank-plugins",
        description="A local cross-encoder reranker: score, serve and evaluate.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_score_parser(subparsers)
    _add_models_parser(subparsers)
    for name, command in (("serve", serve_command), ("eval", eval_command)):
        command.add_parser(subparsers)
        subparsers.choices[name].set_defaults(run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    status: int = args.run(args)
    return status


if __name__ == "__main__":
    sys.exit(main())
