"""The FastAPI app: Cohere v1/v2, Jina, vLLM and TEI compatible rerank endpoints on one scorer.

Routes (built from the dialect modules in :mod:`rerank_plugins.wire`, see ``_routes``):

* ``POST /rerank``: Cohere v1 / vLLM body, or TEI's body (detected by its ``texts`` field,
  answered with TEI's bare list).
* ``POST /v1/rerank``: Cohere v1, Jina and vLLM.
* ``POST /v2/rerank``: Cohere v2 (and vLLM's ``/v2/rerank``).
* ``POST /infinity/rerank``: michaelfeil/infinity's shape (``document`` is a string), for
  clients such as litellm's ``infinity/`` provider given the base URL ``.../infinity``.
* ``GET /health``: 200 once the model is loaded, 503 while it loads or after it failed.
* ``GET /metrics``: Prometheus text format.

Nobody waits for work nobody wants (``_ranking``): a request whose client disconnects has
its scoring job cancelled, a request that would wait more than ``max_queue_seconds`` of
work gets 429 with ``Retry-After``, and a request with a deadline (``request_timeout``, or
the ``X-Request-Timeout`` header) gets 503 when it cannot finish in time and 504 when its
deadline passes while it waits. Bodies over ``max_body_bytes`` get 413 before they are read
whole (``_limits``); bodies are parsed by hand (``_requests``).

The model is loaded in a background task started by the lifespan, so ``/health`` can
answer 503 while a large model loads (readiness probes) instead of refusing connections.
"""

from __future__ import annotations

import asyncio
import os
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from rerank_plugins._optional import require
from rerank_plugins._version import __version__

require("fastapi", extra="server", feature="The HTTP server")

from fastapi import FastAPI  # noqa: E402

from rerank_plugins.server._defaults import (  # noqa: E402
    API_KEY_ENV,
    DEFAULT_MAX_DOCUMENT_CHARS,
    DEFAULT_MAX_DOCUMENTS,
    DEFAULT_MAX_QUEUE_SECONDS,
    REQUEST_TIMEOUT_HEADER,
)
from rerank_plugins.server._errors import install_error_handlers  # noqa: E402
from rerank_plugins.server._limits import BodyLimitMiddleware  # noqa: E402
from rerank_plugins.server._metrics import MetricsMiddleware, QueueStats, ServerMetrics  # noqa: E402
from rerank_plugins.server._routes import add_routes  # noqa: E402
from rerank_plugins.server._scorer_state import RerankScorer, load_scorer, set_scorer  # noqa: E402
from rerank_plugins.server._settings import Settings  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_MAX_DOCUMENTS",
    "DEFAULT_MAX_DOCUMENT_CHARS",
    "DEFAULT_MAX_QUEUE_SECONDS",
    "REQUEST_TIMEOUT_HEADER",
    "QueueStats",
    "RerankScorer",
    "create_app",
]


def create_app(
    scorer: RerankScorer | None = None,
    *,
    model: str | os.PathLike[str] | None = None,
    api_key: str | None = None,
    max_documents: int = DEFAULT_MAX_DOCUMENTS,
    max_document_chars: int = DEFAULT_MAX_DOCUMENT_CHARS,
    scorer_options: dict[str, Any] | None = None,
    max_queue_seconds: float | None = DEFAULT_MAX_QUEUE_SECONDS,
    request_timeout: float | None = None,
    max_body_bytes: int | None = None,
) -> FastAPI:
    """Build the rerank server app.

    Args:
        scorer: A loaded scorer to serve (it is ready at once, with or without a lifespan).
        model: A model id or local path (``str`` or ``os.PathLike``) to load with
            ``rerank_plugins.get_scorer`` in the background when the app starts; the
            endpoints answer 503 until it is loaded.
        api_key: Require ``Authorization: Bearer <api_key>`` on every endpoint but
            ``/health`` and the API docs. ``None`` reads ``$RERANK_PLUGINS_API_KEY``; when
            that is unset or empty too, the server is open.
        max_documents: Most documents per request; more is answered with 413.
        max_document_chars: Most characters per document and in the query; more is 413.
        scorer_options: Keyword arguments for ``get_scorer`` (``device``, ``dtype``,
            ``max_length``, ``batch_size``...). Only with ``model``.
        max_queue_seconds: Answer 429 (with ``Retry-After``) when the pairs waiting in
            the scorer's queue plus this request's would take longer than this at the
            scorer's measured rate. A request is always admitted when nothing waits, so
            any request within the document limits can be served. ``None`` turns it off
            (the scorer's own queue bound still applies).
        request_timeout: Seconds a request may wait and be scored; ``None`` (default) for
            no deadline. A request's ``X-Request-Timeout`` header (seconds) can shorten it.
            With a deadline, a request the server estimates cannot finish in time gets 503
            and one whose deadline passes while it waits gets 504; its job is cancelled.
        max_body_bytes: Largest request body; larger ones get 413 before they are read.
            ``None`` derives it from the document limits (about 80 MB by default).

    Returns:
        The FastAPI app; run it with any ASGI server (``rerank-plugins serve`` uses uvicorn).

    Raises:
        ValueError: Neither or both of ``scorer`` and ``model`` were given, or an option is
            out of range.
    """
    model = os.fspath(model) if isinstance(model, os.PathLike) else model
    if (scorer is None) == (model is None):
        msg = (
            "create_app needs exactly one of scorer or model, got "
            f"scorer={scorer!r} and model={model!r}. Pass create_app(model='<id or path>') "
            "to load a model, or create_app(scorer) to serve a loaded one."
        )
        raise ValueError(msg)
    if scorer is not None and scorer_options:
        msg = (
            f"scorer_options={scorer_options!r} only apply when the app loads the model "
            "(create_app(model=...)); configure the scorer you pass instead."
        )
        raise ValueError(msg)
    settings = Settings.build(
        model=model if model is not None else getattr(scorer, "model", None),
        api_key=api_key,
        max_documents=max_documents,
        max_document_chars=max_document_chars,
        max_queue_seconds=max_queue_seconds,
        request_timeout=request_timeout,
        max_body_bytes=max_body_bytes,
    )
    options = dict(scorer_options or {})
    metrics = ServerMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task: asyncio.Task[None] | None = None
        if app.state.scorer is None and model is not None:
            task = asyncio.create_task(load_scorer(app, model, options))
            app.state.load_task = task
        try:
            yield
        finally:
            if task is not None and not task.done():
                # The loading thread cannot be interrupted; it finishes on its own.
                task.cancel()

    app = FastAPI(
        title="rerank-plugins",
        version=__version__,
        description=(
            "A local cross-encoder reranker with Cohere (v1, v2), Jina, vLLM and "
            "Hugging Face TEI compatible endpoints."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.scorer = None
    app.state.queue_stats = None
    app.state.load_error = None
    app.state.load_task = None
    # Set by `rerank-plugins serve` to stop uvicorn when loading fails; private.
    app.state.on_load_error = None
    metrics.track_queue(lambda: app.state.queue_stats)
    if scorer is not None:
        set_scorer(app, scorer)

    install_error_handlers(app)
    endpoints = add_routes(app, api_key=settings.api_key, metrics=metrics)
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    # Added last, so outermost: it also counts the 413s of the body limit.
    app.add_middleware(MetricsMiddleware, metrics=metrics, endpoints=endpoints)
    return app
