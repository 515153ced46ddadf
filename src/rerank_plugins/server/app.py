"""The FastAPI app: Cohere v1/v2, Jina, vLLM and TEI compatible rerank endpoints on one scorer.

Routes:

* ``POST /rerank``: Cohere v1 / vLLM body, or TEI's body (detected by its ``texts`` field,
  answered with TEI's bare list).
* ``POST /v1/rerank``: Cohere v1, Jina and vLLM.
* ``POST /v2/rerank``: Cohere v2 (and vLLM's ``/v2/rerank``).
* ``POST /infinity/rerank``: michaelfeil/infinity's shape (``document`` is a string), for
  clients such as litellm's ``infinity/`` provider given the base URL ``.../infinity``.
* ``GET /health``: 200 once the model is loaded, 503 while it loads or after it failed.
* ``GET /metrics``: Prometheus text format.

Nobody waits for work nobody wants: a request whose client disconnects has its scoring job
cancelled (dropped if still queued), a request that would wait more than
``max_queue_seconds`` of work gets 429 with ``Retry-After``, and a request with a deadline
(``request_timeout``, or the ``X-Request-Timeout`` header) gets 503 when it cannot finish in
time and 504 when its deadline passes while it waits. Bodies over ``max_body_bytes`` get 413
before they are read whole.

The model is loaded in a background task started by the lifespan, so ``/health`` can
answer 503 while a large model loads (readiness probes) instead of refusing connections.
Bodies are parsed by hand rather than by FastAPI's body parameters so that a missing or
wrong ``Content-Type`` header (``curl -d`` sends a form type) still parses as JSON, and so
that every problem gets the same error shape.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import math
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from rerank_plugins._optional import require
from rerank_plugins._version import __version__
from rerank_plugins.errors import OverloadedError

require("fastapi", extra="server", feature="The HTTP server")

from fastapi import Depends, FastAPI, Request  # noqa: E402
from fastapi.responses import JSONResponse, Response  # noqa: E402
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer  # noqa: E402
from pydantic import TypeAdapter, ValidationError  # noqa: E402
from starlette.requests import ClientDisconnect  # noqa: E402

from rerank_plugins.server._defaults import (  # noqa: E402
    API_KEY_ENV,
    DEFAULT_MAX_DOCUMENT_CHARS,
    DEFAULT_MAX_DOCUMENTS,
    DEFAULT_MAX_QUEUE_SECONDS,
    REQUEST_TIMEOUT_HEADER,
    default_max_body_bytes,
)
from rerank_plugins.server._errors import (  # noqa: E402
    APIError,
    install_error_handlers,
    validation_error_from_pydantic,
)
from rerank_plugins.server._limits import BodyLimitMiddleware  # noqa: E402
from rerank_plugins.server._metrics import (  # noqa: E402
    CONTENT_TYPE,
    MetricsMiddleware,
    QueueStats,
    ServerMetrics,
)
from rerank_plugins.server.schemas import (  # noqa: E402
    INFINITY_BODY_ADAPTER,
    LEGACY_BODY_ADAPTER,
    V1_BODY_ADAPTER,
    V2_BODY_ADAPTER,
    DocumentObject,
    ErrorBody,
    HealthResponse,
    InfinityRerankRequest,
    InfinityRerankResponse,
    RerankRequest,
    RerankResponse,
    RerankV2Request,
    TEIRank,
    TEIRerankRequest,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from rerank_plugins._results import RankResult

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

logger = logging.getLogger(__name__)

_SEARCH_UNIT_DOCUMENTS = 100  # Cohere bills one search unit per query and 100 documents.
_RETRY_AFTER_LOADING_S = "5"
_RETRY_AFTER_OVERLOADED_S = "1"
# A rerank body nests 3 levels ({"documents": [{"text": ...}]}); vendor extras a few more.
# Deeper bodies are refused before validation, which (like repr) recurses per level.
_MAX_JSON_DEPTH = 32
# Status for requests whose client went away (nginx's convention; nobody receives it, but
# it is what /metrics and the access log show).
_CLIENT_CLOSED_REQUEST = 499

_BodyT = TypeVar("_BodyT")
_T = TypeVar("_T")


class RerankScorer(Protocol):
    """What the server needs from a scorer (``CrossEncoderScorer`` provides it).

    A scorer that also reports its queue (:class:`QueueStats`: ``pending_requests``,
    ``pending_pairs``, ``pairs_per_second``) gets work-bounded admission
    (``max_queue_seconds``), deadline estimates and the queue gauges in ``/metrics``.
    """

    @property
    def model(self) -> str:
        """The model id or path the scorer was loaded from."""
        ...

    async def arank(
        self,
        query: str,
        passages: Sequence[str],
        *,
        top_n: int | None = None,
    ) -> list[RankResult]:
        """Rank ``passages`` for ``query``, best first."""
        ...

    def count_tokens(self, query: str, passages: Sequence[str]) -> int:
        """Tokens the model sees for these pairs."""
        ...


@dataclass(frozen=True)
class _Settings:
    model: str | None
    api_key: str | None
    max_documents: int
    max_document_chars: int
    max_queue_seconds: float | None
    request_timeout: float | None
    max_body_bytes: int


def _check_positive_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        msg = f"{name} must be a positive int, got {value!r}."
        raise ValueError(msg)
    return value


def _check_seconds(name: str, value: object) -> float | None:
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value <= 0
    ):
        msg = f"{name} must be a positive number of seconds or None, got {value!r}."
        raise ValueError(msg)
    return float(value)


def _resolve_api_key(api_key: str | None) -> str | None:
    if api_key is None:
        return os.environ.get(API_KEY_ENV) or None
    if not isinstance(api_key, str) or not api_key:
        msg = (
            f"api_key must be a non-empty string or None, got {api_key!r}. "
            f"Pass None to read it from ${API_KEY_ENV}, or leave both unset for no auth."
        )
        raise ValueError(msg)
    return api_key


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
    settings = _Settings(
        model=model if model is not None else getattr(scorer, "model", None),
        api_key=_resolve_api_key(api_key),
        max_documents=_check_positive_int("max_documents", max_documents),
        max_document_chars=_check_positive_int("max_document_chars", max_document_chars),
        max_queue_seconds=_check_seconds("max_queue_seconds", max_queue_seconds),
        request_timeout=_check_seconds("request_timeout", request_timeout),
        max_body_bytes=(
            default_max_body_bytes(max_documents, max_document_chars)
            if max_body_bytes is None
            else _check_positive_int("max_body_bytes", max_body_bytes)
        ),
    )
    options = dict(scorer_options or {})
    metrics = ServerMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task: asyncio.Task[None] | None = None
        if app.state.scorer is None and model is not None:
            task = asyncio.create_task(_load_scorer(app, model, options))
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
        _set_scorer(app, scorer)

    install_error_handlers(app)
    auth = _auth_dependencies(settings.api_key)
    extra_schemas: dict[str, Any] = {}
    error_responses: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody, "description": description}
        for status, description in (
            (401, "Missing or wrong API key"),
            (413, "Too many documents, a document is too long, or the body is too large"),
            (422, "Malformed request"),
            (429, "Overloaded; retry later"),
            (503, "The model is loading or failed to load"),
        )
    }
    rerank_errors: dict[int | str, dict[str, Any]] = {
        **error_responses,
        503: {
            "model": ErrorBody,
            "description": "The model is loading or failed to load, or the request cannot "
            "finish before its deadline",
        },
        504: {"model": ErrorBody, "description": "The request's deadline passed"},
    }
    timeout_header = {
        "name": REQUEST_TIMEOUT_HEADER,
        "in": "header",
        "required": False,
        "description": "Seconds this client waits: 503 when the server estimates it cannot "
        "answer in time, 504 when the time passes while the request waits or is scored.",
        "schema": {"type": "number", "exclusiveMinimum": 0},
    }

    @app.post(
        "/rerank",
        dependencies=auth,
        response_model=None,
        summary="Rerank (Cohere v1 / vLLM, or TEI when the body has `texts`)",
        openapi_extra={
            "requestBody": _body_schema(LEGACY_BODY_ADAPTER, extra_schemas),
            "parameters": [timeout_header],
        },
        responses={
            200: {
                "description": "Cohere/vLLM response, or TEI's bare list for a TEI body",
                "content": {
                    "application/json": {
                        "schema": {
                            "oneOf": [
                                {"$ref": "#/components/schemas/RerankResponse"},
                                {
                                    "type": "array",
                                    "items": {"$ref": "#/components/schemas/TEIRank"},
                                },
                            ]
                        }
                    }
                },
            },
            **rerank_errors,
        },
    )
    async def rerank(request: Request) -> Response:
        scorer = _ready_scorer(request)
        body = await _parse_body(request, LEGACY_BODY_ADAPTER)
        if isinstance(body, TEIRerankRequest):
            return await _tei_rerank(request, scorer, body)
        return await _cohere_rerank(request, scorer, body, api_version="1")

    @app.post(
        "/v1/rerank",
        dependencies=auth,
        response_model=None,
        summary="Rerank (Cohere v1, Jina, vLLM)",
        openapi_extra={
            "requestBody": _body_schema(V1_BODY_ADAPTER, extra_schemas),
            "parameters": [timeout_header],
        },
        responses={200: {"model": RerankResponse}, **rerank_errors},
    )
    async def rerank_v1(request: Request) -> Response:
        scorer = _ready_scorer(request)
        body = await _parse_body(request, V1_BODY_ADAPTER)
        return await _cohere_rerank(request, scorer, body, api_version="1")

    @app.post(
        "/v2/rerank",
        dependencies=auth,
        response_model=None,
        summary="Rerank (Cohere v2, vLLM)",
        openapi_extra={
            "requestBody": _body_schema(V2_BODY_ADAPTER, extra_schemas),
            "parameters": [timeout_header],
        },
        responses={200: {"model": RerankResponse}, **rerank_errors},
    )
    async def rerank_v2(request: Request) -> Response:
        scorer = _ready_scorer(request)
        body = await _parse_body(request, V2_BODY_ADAPTER)
        return await _cohere_rerank(request, scorer, body, api_version="2")

    @app.post(
        "/infinity/rerank",
        dependencies=auth,
        response_model=None,
        summary="Rerank (Infinity: `document` is a string)",
        openapi_extra={
            "requestBody": _body_schema(INFINITY_BODY_ADAPTER, extra_schemas),
            "parameters": [timeout_header],
        },
        responses={200: {"model": InfinityRerankResponse}, **rerank_errors},
    )
    async def rerank_infinity(request: Request) -> Response:
        scorer = _ready_scorer(request)
        body = await _parse_body(request, INFINITY_BODY_ADAPTER)
        return await _infinity_rerank(request, scorer, body)

    @app.get(
        "/health",
        response_model=None,
        summary="Readiness: 200 once the model is loaded",
        responses={200: {"model": HealthResponse}, 503: error_responses[503]},
    )
    async def health(request: Request) -> Response:
        scorer = _ready_scorer(request)
        return JSONResponse({"status": "ok", "model": scorer.model})

    @app.get(
        "/metrics",
        dependencies=auth,
        response_model=None,
        summary="Prometheus metrics",
        responses={
            200: {"content": {CONTENT_TYPE: {}}, "description": "Prometheus text"},
            401: error_responses[401],
        },
    )
    async def prometheus_metrics(request: Request) -> Response:
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    _install_openapi_components(app, extra_schemas, models=(RerankResponse, TEIRank))
    endpoints = {"/rerank", "/v1/rerank", "/v2/rerank", "/infinity/rerank", "/health", "/metrics"}
    app.add_middleware(BodyLimitMiddleware, max_body_bytes=settings.max_body_bytes)
    # Added last, so outermost: it also counts the 413s of the body limit.
    app.add_middleware(MetricsMiddleware, metrics=metrics, endpoints=endpoints)
    return app


# --- loading ---------------------------------------------------------------------------------


def _set_scorer(app: FastAPI, scorer: RerankScorer) -> None:
    app.state.queue_stats = scorer if isinstance(scorer, QueueStats) else None
    app.state.scorer = scorer
    app.state.metrics.model_loaded.labels(str(scorer.model)).set(1)


async def _load_scorer(app: FastAPI, model: str, options: dict[str, Any]) -> None:
    # Looked up at call time (not imported at module level) so that importing the server
    # stays light and `rerank_plugins.get_scorer` can be swapped in tests.
    import rerank_plugins

    app.state.metrics.model_loaded.labels(model).set(0)
    logger.info("Loading model %r with options %r", model, options)
    start = time.perf_counter()
    try:
        scorer = await asyncio.to_thread(rerank_plugins.get_scorer, model, **options)
    except Exception as exc:
        logger.exception("Could not load model %r; /health and /rerank answer 503", model)
        app.state.load_error = exc
        hook: Callable[[BaseException], None] | None = app.state.on_load_error
        if hook is not None:
            hook(exc)
        return
    _set_scorer(app, scorer)
    logger.info("Loaded model %r in %.1f s", model, time.perf_counter() - start)


def _ready_scorer(request: Request) -> RerankScorer:
    state = request.app.state
    scorer: RerankScorer | None = state.scorer
    if scorer is not None:
        return scorer
    model = state.settings.model
    error: BaseException | None = state.load_error
    if error is not None:
        raise APIError(
            503,
            f"The model {model!r} failed to load ({type(error).__name__}: {error}). "
            "Fix the model id, path or options and restart the server; the server log "
            "has the traceback.",
            error_type="model_load_error",
        )
    raise APIError(
        503,
        f"The model {model!r} is still loading. Retry in a few seconds; GET /health "
        "answers 200 once it is ready.",
        error_type="model_loading_error",
        headers={"Retry-After": _RETRY_AFTER_LOADING_S},
    )


# --- auth ------------------------------------------------------------------------------------


def _auth_dependencies(api_key: str | None) -> list[Any]:
    if api_key is None:
        return []
    expected = api_key.encode()
    bearer = HTTPBearer(auto_error=False, description="The server's API key.")

    async def check_api_key(
        credentials: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
    ) -> None:
        if credentials is None:
            raise APIError(
                401,
                "Missing API key. Send the header 'Authorization: Bearer <key>' with the key "
                f"the server was started with (--api-key or ${API_KEY_ENV}).",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(credentials.credentials.encode(), expected):
            raise APIError(
                401,
                "Invalid API key in the Authorization header. Send the key the server was "
                f"started with (--api-key or ${API_KEY_ENV}).",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return [Depends(check_api_key)]


# --- request parsing and limits --------------------------------------------------------------


async def _parse_body(request: Request, adapter: TypeAdapter[_BodyT]) -> _BodyT:
    try:
        raw = await request.body()
    except ClientDisconnect:
        raise _client_gone(request, "while sending its body") from None
    if not raw.strip():
        raise APIError(
            422,
            "Request body is empty. Send a JSON object such as "
            '{"query": "...", "documents": ["...", "..."]}.',
        )
    too_deep = APIError(
        422,
        f"Request body nests arrays or objects more than {_MAX_JSON_DEPTH} levels deep. "
        'Send a JSON object such as {"query": "...", "documents": ["...", "..."]}.',
    )
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise APIError(
            422,
            f"Request body is not valid JSON ({exc}). Send a JSON object with "
            "'Content-Type: application/json'.",
        ) from exc
    except RecursionError:
        # Deeper than the interpreter's recursion limit: not worth a traceback in the log.
        raise too_deep from None
    # Counting brackets is cheap and skips the walk for the usual bodies (lists of strings).
    brackets = raw.count(b"[") + raw.count(b"{")
    if brackets > _MAX_JSON_DEPTH and _nesting_depth(data) > _MAX_JSON_DEPTH:
        raise too_deep
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        hint = ""
        if isinstance(data, dict) and "texts" in data and adapter is not LEGACY_BODY_ADAPTER:
            hint = " TEI-style bodies with 'texts' are served at POST /rerank."
        raise validation_error_from_pydantic(exc, hint=hint) from exc


def _nesting_depth(data: object) -> int:
    """How many arrays/objects deep ``data`` nests, without recursion (bodies may be hostile)."""
    if not isinstance(data, (dict, list)):
        return 0
    deepest = 0
    stack: list[tuple[dict[str, Any] | list[Any], int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > _MAX_JSON_DEPTH:  # one level past the limit is enough to know
            break
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _check_limits(request: Request, query: str, texts: Sequence[str]) -> None:
    settings: _Settings = request.app.state.settings
    if len(texts) > settings.max_documents:
        raise APIError(
            413,
            f"Too many documents: got {len(texts)}, the limit is max_documents="
            f"{settings.max_documents}. Send fewer documents per request, or raise the "
            "limit with `rerank-plugins serve --max-documents N` "
            "(create_app(max_documents=N)).",
        )
    limit = settings.max_document_chars
    if len(query) > limit:
        raise APIError(
            413,
            f"The query has {len(query)} characters, more than max_document_chars={limit}. "
            "Shorten it, or raise the limit with `rerank-plugins serve "
            "--max-document-chars N` (create_app(max_document_chars=N)).",
        )
    for i, text in enumerate(texts):
        if len(text) > limit:
            raise APIError(
                413,
                f"Document {i} has {len(text)} characters, more than max_document_chars="
                f"{limit}. Split or shorten it, or raise the limit with `rerank-plugins "
                "serve --max-document-chars N` (create_app(max_document_chars=N)).",
            )


# --- ranking ---------------------------------------------------------------------------------


def _request_timeout(request: Request) -> float | None:
    """The request's deadline in seconds: the server's, shortened by the client's header."""
    settings: _Settings = request.app.state.settings
    raw = request.headers.get(REQUEST_TIMEOUT_HEADER)
    if raw is None:
        return settings.request_timeout
    try:
        seconds = float(raw)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise APIError(
            422,
            f"The {REQUEST_TIMEOUT_HEADER} header must be a positive number of seconds, got "
            f"{raw[:40]!r}. Send for example '{REQUEST_TIMEOUT_HEADER}: 30', or omit it.",
        )
    if settings.request_timeout is None:
        return seconds
    return min(seconds, settings.request_timeout)


def _retry_after(seconds: float | None) -> str:
    """A ``Retry-After`` value: whole seconds, at least 1."""
    if seconds is None or not math.isfinite(seconds):
        return _RETRY_AFTER_OVERLOADED_S
    return str(max(1, math.ceil(seconds)))


def _admit(request: Request, pairs: int, timeout: float | None) -> None:
    """Refuse a request the queue has no room or no time for, before it is queued.

    The estimate is the work waiting in the scorer's queue plus this request's, at the
    scorer's measured rate; without a rate yet (or a scorer that does not report one),
    every request is admitted and the scorer's own queue bound applies.
    """
    stats: QueueStats | None = request.app.state.queue_stats
    if stats is None:
        return
    rate = stats.pairs_per_second
    if rate is None or rate <= 0:
        return
    waiting = stats.pending_pairs
    finish_s = (waiting + pairs) / rate
    settings: _Settings = request.app.state.settings
    limit = settings.max_queue_seconds
    if limit is not None and waiting > 0 and finish_s > limit:
        raise APIError(
            429,
            f"The server is overloaded: {waiting} pairs are waiting, and with this "
            f"request's {pairs} that is about {finish_s:.1f} s of work at {rate:.1f} pairs/s, "
            f"more than max_queue_seconds={limit:g}. Retry after the Retry-After seconds, "
            "or send fewer documents per request.",
            headers={"Retry-After": _retry_after(waiting / rate)},
        )
    if timeout is not None and finish_s > timeout:
        headers = {"Retry-After": _retry_after(waiting / rate)} if waiting else {}
        raise APIError(
            503,
            f"This request would finish in about {finish_s:.1f} s ({waiting} pairs waiting "
            f"and its own {pairs} at {rate:.1f} pairs/s), after its deadline of {timeout:g} "
            f"s, so it was not started. Send fewer documents, retry later, or allow more "
            f"time ({REQUEST_TIMEOUT_HEADER} header, `rerank-plugins serve "
            "--request-timeout`).",
            error_type="deadline_error",
            headers=headers,
        )


async def _wait_for_disconnect(request: Request) -> None:
    """Return when the client disconnects (call only after the body has been read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _client_gone(request: Request, when: str) -> APIError:
    """The error (never received) for a request whose client disconnected, logged at INFO."""
    logger.info("The client of %s %s disconnected %s.", request.method, request.url.path, when)
    return APIError(
        _CLIENT_CLOSED_REQUEST,
        f"The client closed the connection {when}.",
        error_type="client_closed_request",
    )


def _discard_outcome(task: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of abandoned work, so asyncio does not log it as unretrieved."""
    if not task.cancelled():
        task.exception()


async def _unless_abandoned(request: Request, work: Awaitable[_T], timeout: float | None) -> _T:
    """Await ``work``, cancelling it when the client disconnects or ``timeout`` passes.

    Cancelling the task that awaits the scorer cancels its job: dropped while it is queued,
    stopped after the current batch while it runs. Abandoned work would otherwise be scored
    in full, delaying every request queued behind it.
    """
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_wait_for_disconnect(request))
    try:
        await asyncio.wait({task, watcher}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            task.add_done_callback(_discard_outcome)
    if task.done() and not task.cancelled():
        return task.result()
    if watcher.done() and not watcher.cancelled():
        raise _client_gone(request, "before its answer; its job was cancelled")
    raise APIError(
        504,
        f"The request's deadline of {timeout:g} s passed before it was scored; its job was "
        f"cancelled. Send fewer documents, retry later, or allow more time "
        f"({REQUEST_TIMEOUT_HEADER} header, `rerank-plugins serve --request-timeout`).",
        error_type="deadline_error",
    )


async def _rank(
    request: Request, scorer: RerankScorer, query: str, texts: list[str], top_n: int | None
) -> tuple[list[RankResult], int]:
    _check_limits(request, query, texts)
    timeout = _request_timeout(request)
    _admit(request, len(texts), timeout)
    # top_n above the number of documents means "all of them" (Cohere, Jina, vLLM).
    effective_top_n = None if top_n is None or top_n >= len(texts) else top_n

    async def score() -> tuple[list[RankResult], int]:
        results = await scorer.arank(query, texts, top_n=effective_top_n)
        tokens = await asyncio.to_thread(scorer.count_tokens, query, texts) if texts else 0
        return results, tokens

    try:
        results, tokens = await _unless_abandoned(request, score(), timeout)
    except OverloadedError as exc:
        raise APIError(
            429,
            f"The server is overloaded ({exc or 'its queue is full'}). Retry after a short "
            "wait, or send smaller requests.",
            headers={"Retry-After": _retry_after(exc.retry_after)},
        ) from exc
    except (ValueError, TypeError) as exc:
        raise APIError(422, str(exc)) from exc
    request.app.state.metrics.observe_rerank(documents=len(texts), tokens=tokens)
    return results, tokens


def _document_json(document: str | DocumentObject) -> dict[str, Any]:
    if isinstance(document, str):
        return {"text": document}
    return document.model_dump()


async def _cohere_rerank(
    request: Request,
    scorer: RerankScorer,
    body: RerankRequest | RerankV2Request,
    *,
    api_version: str,
) -> Response:
    if isinstance(body, RerankRequest) and body.rank_fields not in (None, ["text"]):
        raise APIError(
            422,
            f"rank_fields={body.rank_fields!r} is not supported: only the 'text' field of "
            "each document is ranked. Put the text to rank in 'text' (for several fields, "
            "join them, e.g. as 'title: ...\\nbody: ...') and omit rank_fields.",
        )
    texts = [doc if isinstance(doc, str) else doc.text for doc in body.documents]
    results, tokens = await _rank(request, scorer, body.query, texts, body.top_n)
    items: list[dict[str, Any]] = []
    for result in results:
        item: dict[str, Any] = {"index": result.index, "relevance_score": result.score}
        if body.return_documents:
            item["document"] = _document_json(body.documents[result.index])
        items.append(item)
    search_units = max(1, math.ceil(len(texts) / _SEARCH_UNIT_DOCUMENTS))
    content = {
        "id": str(uuid.uuid4()),
        "model": str(scorer.model),
        "results": items,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        "meta": {
            "api_version": {"version": api_version},
            "billed_units": {"search_units": search_units},
            "tokens": {"input_tokens": tokens, "output_tokens": 0},
        },
    }
    return JSONResponse(content)


def _refuse_raw_scores(raw_scores: bool, service: str) -> None:
    """TEI and Infinity can return logits; this server returns activated scores only."""
    if raw_scores:
        raise APIError(
            422,
            "raw_scores=true is not supported: this server returns the model's scores after "
            f"its activation ({service}'s raw_scores=false). Send raw_scores=false or omit it.",
        )


async def _tei_rerank(request: Request, scorer: RerankScorer, body: TEIRerankRequest) -> Response:
    _refuse_raw_scores(body.raw_scores, "TEI")
    if body.truncation_direction.lower() != "right":
        raise APIError(
            422,
            f"truncation_direction={body.truncation_direction!r} is not supported: texts "
            "longer than the model's max_length lose their end. Send 'Right' or omit it.",
        )
    results, tokens = await _rank(request, scorer, body.query, body.texts, None)
    items: list[dict[str, Any]] = []
    for result in results:
        item: dict[str, Any] = {"index": result.index, "score": result.score}
        if body.return_text:
            item["text"] = body.texts[result.index]
        items.append(item)
    characters = len(body.query) * len(body.texts) + sum(len(t) for t in body.texts)
    headers = {"x-compute-tokens": str(tokens), "x-compute-characters": str(characters)}
    return JSONResponse(items, headers=headers)


async def _infinity_rerank(
    request: Request, scorer: RerankScorer, body: InfinityRerankRequest
) -> Response:
    _refuse_raw_scores(body.raw_scores, "Infinity")
    results, tokens = await _rank(request, scorer, body.query, body.documents, body.top_n)
    items: list[dict[str, Any]] = []
    for result in results:
        item: dict[str, Any] = {"relevance_score": result.score, "index": result.index}
        if body.return_documents:
            item["document"] = body.documents[result.index]
        items.append(item)
    content = {
        "object": "rerank",
        "id": str(uuid.uuid4()),
        "created": int(time.time()),
        "model": str(scorer.model),
        "results": items,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
    return JSONResponse(content)


# --- OpenAPI ---------------------------------------------------------------------------------


def _body_schema(adapter: TypeAdapter[Any], components: dict[str, Any]) -> dict[str, Any]:
    """An OpenAPI ``requestBody`` for a body parsed by hand; its models go to ``components``."""
    schema = adapter.json_schema(ref_template="#/components/schemas/{model}")
    components.update(schema.pop("$defs", {}))
    title = schema.get("title")
    if schema.get("type") == "object" and isinstance(title, str):
        components[title] = schema
        schema = {"$ref": f"#/components/schemas/{title}"}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _install_openapi_components(
    app: FastAPI, components: dict[str, Any], *, models: Sequence[type[Any]]
) -> None:
    """Add the hand-parsed bodies' schemas to the OpenAPI document FastAPI generates."""
    for model in models:
        _body_schema(TypeAdapter(model), components)
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = generate()
            schemas = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, value in components.items():
                schemas.setdefault(name, value)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = openapi  # type: ignore[method-assign]
