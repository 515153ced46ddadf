"""Command-line options shared by every subcommand that loads a model (score, serve, eval)."""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from typing import Any

_SCORER_OPTIONS = ("revision", "device", "dtype", "backend", "max_length", "batch_size")


class UsageError(Exception):
    """A command-line argument or input that cannot be used; ``rerank-plugins`` exits with 2."""


@contextlib.contextmanager
def usage_errors() -> Iterator[None]:
    """Turn a ``ValueError``/``TypeError`` raised inside into a :class:`UsageError` (exit 2).

    The library raises these built-in types for bad arguments, but the same types can come
    from deep inside a run, where they are failures (exit 1). So wrap only the calls that
    check the command line's values: ``get_scorer`` (which reports a model that fails to
    load as ``ModelLoadError``), option checks, ``create_app``.
    """
    try:
        yield
    except (ValueError, TypeError) as err:
        raise UsageError(str(err)) from err


def positive_int(text: str) -> int:
    """An argparse ``type`` for integers >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        msg = f"must be a positive int, got {text!r}"
        raise argparse.ArgumentTypeError(msg)
    return value


def add_model_options(parser: argparse.ArgumentParser) -> None:
    """Add ``--model`` and the get_scorer options, in a "model" group."""
    group = parser.add_argument_group("model")
    group.add_argument(
        "--model", required=True, metavar="M", help="Hub id, local directory or preset name."
    )
    group.add_argument("--revision", help="Hub branch, tag or commit.")
    group.add_argument(
        "--local-files-only",
        action="store_true",
        help="Never use the network; load from a path or the Hugging Face cache.",
    )
    group.add_argument("--device", help="auto (default: cuda > mps > cpu), cpu, cuda[:N] or mps.")
    group.add_argument(
        "--dtype",
        help="auto (default), float32, float16, bfloat16 (OpenVINO on CPUs with native bf16) "
        "or int8 (ONNX Runtime, CPU); bfloat16 and int8 can change rankings (see the "
        "performance guide).",
    )
    group.add_argument(
        "--backend",
        choices=("auto", "torch", "onnx", "openvino"),
        help="auto (default: ONNX Runtime for BERT/XLM-R models on the CPU in float32, "
        "OpenVINO for bfloat16 on CPUs with native bf16, else torch), torch, onnx or openvino.",
    )
    group.add_argument(
        "--max-length", type=positive_int, metavar="N", help="Tokens per (query, passage) pair."
    )
    group.add_argument(
        "--batch-size", type=positive_int, metavar="N", help="Most pairs per forward pass."
    )


def model_options(args: argparse.Namespace) -> dict[str, Any]:
    """The get_scorer keyword arguments given on the command line (not ``--model``)."""
    options = {name: getattr(args, name) for name in _SCORER_OPTIONS}
    options = {name: value for name, value in options.items() if value is not None}
    if args.local_files_only:
        options["local_files_only"] = True
    return options
