"""The ``rerank-plugins serve`` subcommand: argument parsing and running uvicorn.

``cli.py`` calls :func:`add_parser` when it builds its parser and :func:`run` for ``serve``.
Nothing heavy is imported until :func:`run`, so ``rerank-plugins --help`` stays fast and
works without the ``server`` extra.
"""

from __future__ import annotations

import argparse
import logging
import os
from typing import Any

from rerank_plugins._cli_options import add_model_options, model_options, positive_int, usage_errors
from rerank_plugins.server._defaults import (
    API_KEY_ENV,
    DEFAULT_MAX_DOCUMENT_CHARS,
    DEFAULT_MAX_DOCUMENTS,
    DEFAULT_MAX_QUEUE_SECONDS,
    REQUEST_TIMEOUT_HEADER,
    positive_seconds,
)

__all__ = ["GRACEFUL_SHUTDOWN_S", "LOG_LEVELS", "add_parser", "run"]

logger = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN_S = 30
"""Seconds uvicorn lets in-flight requests finish after SIGTERM/SIGINT before closing them."""

LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


def _port(value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        msg = f"must be an int from 0 to 65535 (0 picks a free port), got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return port


def _seconds(value: str) -> float:
    seconds = positive_seconds(value)
    if seconds is None:
        msg = f"must be a positive number of seconds, got {value!r}"
        raise argparse.ArgumentTypeError(msg)
    return seconds


def _seconds_or_off(value: str) -> float | None:
    try:
        if float(value) == 0:  # "0", "0.0", "-0": no bound
            return None
        return _seconds(value)
    except (ValueError, argparse.ArgumentTypeError):
        msg = f"must be a positive number of seconds, or 0 for no bound, got {value!r}"
        raise argparse.ArgumentTypeError(msg) from None


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``serve`` subcommand to ``subparsers`` (from ``add_subparsers()``)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="Serve a cross-encoder over HTTP (Cohere, Jina, vLLM and TEI compatible).",
        description=(
            "Serve a cross-encoder over HTTP with Cohere v1/v2, Jina, vLLM and TEI "
            "compatible rerank endpoints, /health and /metrics. Needs the server extra: "
            'pip install "rerank-plugins[server]".'
        ),
    )
    add_model_options(parser)
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="Address to bind (default: 127.0.0.1; use 0.0.0.0 to accept remote clients).",
    )
    parser.add_argument("--port", type=_port, default=8000, help="Port to bind (default: 8000).")
    parser.add_argument(
        "--api-key",
        default=None,
        help=f"Require 'Authorization: Bearer KEY' (default: ${API_KEY_ENV}, else no auth). "
        "Prefer the environment variable: arguments show up in `ps`.",
    )
    parser.add_argument(
        "--max-documents",
        type=positive_int,
        default=DEFAULT_MAX_DOCUMENTS,
        help=f"Most documents per request; more is HTTP 413 (default: {DEFAULT_MAX_DOCUMENTS}).",
    )
    parser.add_argument(
        "--max-document-chars",
        type=positive_int,
        default=DEFAULT_MAX_DOCUMENT_CHARS,
        help="Most characters per document and in the query; more is HTTP 413 "
        f"(default: {DEFAULT_MAX_DOCUMENT_CHARS}).",
    )
    parser.add_argument(
        "--max-body-bytes",
        type=positive_int,
        default=None,
        help="Largest request body; larger is HTTP 413 before it is read (default: enough for "
        "--max-documents documents of --max-document-chars characters, about 80 MB).",
    )
    parser.add_argument(
        "--max-queue-seconds",
        type=_seconds_or_off,
        default=DEFAULT_MAX_QUEUE_SECONDS,
        metavar="SECONDS",
        help="HTTP 429 with Retry-After when the waiting work plus the request's would take "
        "longer than this at the measured scoring rate; 0 for no bound (default: "
        f"{DEFAULT_MAX_QUEUE_SECONDS:g}).",
    )
    parser.add_argument(
        "--request-timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="Give up on a request after this long: HTTP 503 when it cannot finish in time, "
        f"504 when the time passes while it waits. Clients can shorten it with the "
        f"{REQUEST_TIMEOUT_HEADER} header (default: no deadline).",
    )
    parser.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="Log level (default: info)."
    )
    return parser


def _configure_logging(level: str) -> None:
    root = logging.getLogger()
    if not root.handlers:
        logging.basicConfig(format="%(levelname)s:     %(name)s - %(message)s")
    logging.getLogger("rerank_plugins").setLevel(level.upper())


def run(args: argparse.Namespace) -> int:
    """Run the server until SIGTERM/SIGINT; return the process exit code.

    On SIGTERM/SIGINT uvicorn stops accepting connections, lets requests in flight finish
    (up to ``GRACEFUL_SHUTDOWN_S``), runs the lifespan shutdown and then re-raises the
    signal (uvicorn >= 0.29), so the process ends as terminated by it, as supervisors
    expect. Returns 0 when the server stops otherwise, and 1 when the model failed to load
    or the server could not start (for example, the port is taken).
    """
    from rerank_plugins._optional import require

    uvicorn = require("uvicorn", extra="server", feature="The HTTP server")
    from rerank_plugins.server.app import create_app

    _configure_logging(args.log_level)
    options = model_options(args)
    with usage_errors():  # create_app only checks its options; the model loads in the lifespan
        app = create_app(
            model=args.model,
            api_key=args.api_key,
            max_documents=args.max_documents,
            max_document_chars=args.max_document_chars,
            scorer_options=options,
            max_queue_seconds=args.max_queue_seconds,
            request_timeout=args.request_timeout,
            max_body_bytes=args.max_body_bytes,
        )
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        lifespan="on",
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    server = uvicorn.Server(config)

    def stop_on_load_error(exc: BaseException) -> None:
        server.should_exit = True

    app.state.on_load_error = stop_on_load_error
    if args.api_key is None and not os.environ.get(API_KEY_ENV) and args.host not in _LOOPBACK:
        logger.warning(
            "Serving on %s without an API key: anyone who can reach it can use it. "
            "Set $%s or --api-key.",
            args.host,
            API_KEY_ENV,
        )
    try:
        server.run()
    except SystemExit as exc:  # uvicorn exits (with 3) when it cannot bind the port
        if exc.code in (0, None):
            return 0
        logger.error("Exiting: the server could not start on %s:%s.", args.host, args.port)
        return 1
    if app.state.load_error is not None:
        logger.error("Exiting: the model %r failed to load.", args.model)
        return 1
    if not server.started:
        return 1
    return 0
