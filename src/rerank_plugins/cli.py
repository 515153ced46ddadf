"""The ``rerank-plugins`` command: ``score``, ``models``, ``serve`` and ``eval``.

Each subcommand imports what it needs when it runs, so ``--help`` is instant. Errors are
handled in one place, :func:`main`: one line on stderr, exit status 2 for usage errors
(bad arguments, unreadable input) and 1 for runtime failures (a model that cannot be
loaded, a failed run); ``--debug`` (``-v``) shows the traceback instead.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Sequence
from typing import Any

from rerank_plugins._cli_options import (
    UsageError,
    add_model_options,
    model_options,
    positive_int,
    usage_errors,
)
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
    if not args.query.strip():
        msg = f"--query must be a non-empty string, got {args.query!r}."
        raise UsageError(msg)
    passages: list[str] = list(args.passages)
    lines: list[int | None] = [None] * len(passages)
    if args.file:
        for number, line in _read_lines(args.file):
            if line.strip():  # blank lines are not scored; results keep the line number
                passages.append(line)
                lines.append(number)
    if not passages:
        msg = "no passages; give them as arguments or with --file."
        raise UsageError(msg)
    from rerank_plugins._context import ContextOptions
    from rerank_plugins._results import check_inputs
    from rerank_plugins.scorer import get_scorer  # torch: only once the input is known good

    # The options are checked apart from scoring: a ValueError while scoring is a failure.
    with usage_errors():
        scorer = get_scorer(args.model, **model_options(args))
        context = ContextOptions.create(
            top_n=args.top_n,
            max_context_tokens=args.max_context_tokens,
            length_function=args.tokenizer,
            default_length_function=scorer.count_text_tokens,
            deduplicate=args.deduplicate,
            order=args.order,
        )
        passages = check_inputs(args.query, passages)
    results = context.rank(passages, functools.partial(scorer.rank, args.query)).results
    payload = []
    for r in results:
        item: dict[str, Any] = {"index": r.index, "score": r.score, "text": r.text}
        if lines[r.index] is not None:
            item["line"] = lines[r.index]
        if r.tokens is not None:
            item["tokens"] = r.tokens
        if r.duplicates:
            item["duplicates"] = list(r.duplicates)
        payload.append(item)
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, indent=2) + "\n")
    return 0


def _read_lines(name: str) -> list[tuple[int, str]]:
    """``(line number, text)`` of each line of ``name`` (``-``: standard input), 1-based."""
    try:
        if name == "-":
            text = sys.stdin.read()
        else:
            with open(name, encoding="utf-8") as file:
                text = file.read()
    except FileNotFoundError as err:
        msg = f"--file {name!r}: no such file."
        raise UsageError(msg) from err
    except IsADirectoryError as err:
        msg = f"--file {name!r} is a directory; give a text file with one passage per line."
        raise UsageError(msg) from err
    except UnicodeDecodeError as err:
        msg = f"--file {name!r} is not UTF-8 text (byte {err.start}: {err.reason})."
        raise UsageError(msg) from err
    return list(enumerate(text.splitlines(), start=1))


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
    _add_debug_option(parser, default=False)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_score_parser(subparsers)
    _add_models_parser(subparsers)
    for name, command in (("serve", serve_command), ("eval", eval_command)):
        command.add_parser(subparsers)
        subparsers.choices[name].set_defaults(run=command.run)
    for subparser in subparsers.choices.values():
        # SUPPRESS: an option given before the subcommand is not reset by its default.
        _add_debug_option(subparser, default=argparse.SUPPRESS)
    return parser


def _add_debug_option(parser: argparse.ArgumentParser, *, default: Any) -> None:
    parser.add_argument(
        "-v",
        "--debug",
        action="store_true",
        default=default,
        help="On an error, show the full traceback instead of a one-line message.",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status (0 ok, 1 failed, 2 usage error)."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except KeyboardInterrupt:
        sys.stderr.write(f"rerank-plugins {args.command}: interrupted.\n")
        return 130
    except Exception as err:
        if args.debug:
            raise
        sys.stderr.write(f"rerank-plugins {args.command}: error: {_one_line(err)}\n")
        return 2 if _is_usage_error(err) else 1
    return status


def _is_usage_error(err: Exception) -> bool:
    """Bad arguments or input (exit 2), as opposed to a failure while running (exit 1).

    Only :class:`UsageError`: subcommands raise it for their own checks and turn the
    library's argument errors into it (:func:`usage_errors`) where they check options. A
    plain ``ValueError`` or ``TypeError`` that gets here was raised while running.
    """
    return isinstance(err, UsageError)


def _one_line(err: Exception) -> str:
    """The message of ``err`` on one line; unexpected errors also name their type."""
    from rerank_plugins.errors import RerankPluginsError

    text = " ".join(line.strip() for line in str(err).strip().splitlines()) or "(no message)"
    expected = (RerankPluginsError, UsageError, OSError)
    if not isinstance(err, expected):
        text = f"{type(err).__name__}: {text} (run with --debug for the traceback)"
    return text


if __name__ == "__main__":
    sys.exit(main())
