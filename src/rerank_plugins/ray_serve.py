"""Serve the reranker on a Ray cluster: replicas (one per GPU), request batching, same HTTP API.

Needs the ``ray`` extra (``pip install "rerank-plugins[ray]"``, which brings ``ray[serve]``).
Each replica loads the model once with :func:`rerank_plugins.get_scorer` and answers with
the same FastAPI app as ``rerank-plugins serve`` (Cohere v1/v2, Jina, vLLM and TEI request
shapes, the same errors and limits), so :class:`rerank_plugins.RemoteScorer`, and through
it both adapters, work unchanged against a Ray Serve endpoint.

From the command line (``key=value`` arguments, see :func:`app`)::

    serve run rerank_plugins.ray_serve:app model=BAAI/bge-reranker-v2-m3 num_replicas=4

From Python::

    from ray import serve
    from rerank_plugins.ray_serve import build_app

    serve.run(build_app("BAAI/bge-reranker-v2-m3", num_replicas=4), route_prefix="/")

Requests are batched twice: ``@serve.batch`` gathers up to ``max_batch_size`` concurrent
HTTP requests of a replica (waiting at most ``batch_wait_timeout_s``) and submits them to
the scorer together, whose worker packs all their pairs into length-sorted forward passes.
Both knobs live in the deployment's ``user_config``, so they can be changed on a running
application without restarting replicas.

Why the app is called from ``__call__`` rather than ``@serve.ingress``: the app holds a
Prometheus registry (locks, so it cannot be pickled into a class decorator) and must be
built inside each replica around that replica's scorer. Ray builds ingress apps per replica
only in recent releases (builder functions, ``__serve_build_asgi_app__``); forwarding from
``__call__`` works on every Ray 2.x release and still serves the whole app.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rerank_plugins._optional import require
from rerank_plugins._results import RankResult, check_selection, select_top
from rerank_plugins.server._defaults import DEFAULT_MAX_DOCUMENT_CHARS, DEFAULT_MAX_DOCUMENTS

require("ray", extra="ray", feature="The Ray Serve deployment", package="ray[serve]")

from ray import serve  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ray.serve import Application
    from starlette.types import ASGIApp, Message

    from rerank_plugins.scorer import CrossEncoderScorer

__all__ = [
    "DEFAULT_BATCH_WAIT_TIMEOUT_S",
    "DEFAULT_MAX_BATCH_SIZE",
    "RerankDeployment",
    "app",
    "build_app",
]

logger = logging.getLogger(__name__)

DEFAULT_MAX_BATCH_SIZE = 16
"""HTTP requests a replica gathers into one scoring batch."""
DEFAULT_BATCH_WAIT_TIMEOUT_S = 0.005
"""Seconds a replica waits for more requests before scoring a partial batch."""
DEFAULT_MAX_ONGOING_REQUESTS = 64
"""Requests a replica accepts at once; more than ``max_batch_size`` so batches can fill."""


class _BatchedScorer:
    """The scorer as the server sees it inside a replica: scoring goes through the batcher."""

    def __init__(
        self,
        scorer: CrossEncoderScorer,
        score: Callable[[str, list[str]], Awaitable[list[float]]],
    ) -> None:
        self._scorer = scorer
        self._score = score
        self.model = scorer.model
        self.max_length = scorer.max_length

    async def arank(
        self,
        query: str,
        passages: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
    ) -> list[RankResult]:
        check_selection(top_n, score_threshold)
        passages = list(passages)
        scores = await self._score(query, passages)
        return select_top(scores, passages, top_n, score_threshold)

    def count_tokens(self, query: str, passages: Sequence[str]) -> int:
        return self._scorer.count_tokens(query, passages)


@serve.deployment(name="RerankPlugins")
class RerankDeployment:
    """One replica: a loaded scorer behind the rerank server's FastAPI app.

    Args:
        model: Hub id or local path of the cross-encoder.
        scorer_options: Keyword arguments of :func:`rerank_plugins.get_scorer`.
        server_options: Keyword arguments of :func:`rerank_plugins.server.create_app`
            (``api_key``, ``max_documents``, ``max_document_chars``).
    """

    def __init__(
        self,
        model: str,
        scorer_options: Mapping[str, Any] | None = None,
        server_options: Mapping[str, Any] | None = None,
    ) -> None:
        import rerank_plugins
        from rerank_plugins.server.app import create_app

        self.scorer = rerank_plugins.get_scorer(model, **dict(scorer_options or {}))
        batched = _BatchedScorer(self.scorer, self._score)
        self.app = create_app(batched, **dict(server_options or {}))
        logger.info("Replica ready: %r", self.scorer)

    def reconfigure(self, user_config: Mapping[str, Any]) -> None:
        """Apply ``user_config``: ``max_batch_size`` and ``batch_wait_timeout_s``."""
        size, wait = _batch_settings(user_config)
        batch_handler: Any = self._score_batch  # ray's stubs omit the setters
        batch_handler.set_max_batch_size(size)
        batch_handler.set_batch_wait_timeout_s(wait)

    async def _score(self, query: str, passages: list[str]) -> list[float]:
        result = await self._score_batch((query, passages))
        if isinstance(result, BaseException):
            raise result
        return result

    @serve.batch(
        max_batch_size=DEFAULT_MAX_BATCH_SIZE, batch_wait_timeout_s=DEFAULT_BATCH_WAIT_TIMEOUT_S
    )
    async def _score_batch(
        self, requests: list[tuple[str, list[str]]]
    ) -> list[list[float] | BaseException]:
        # Submitting every request at once lets the scorer's worker pack all their pairs
        # into shared length-sorted forward passes. A request that fails (a bad query) gets
        # its own error; the others in the batch are unaffected.
        results = await asyncio.gather(
            *(self.scorer.ascore(query, passages) for query, passages in requests),
            return_exceptions=True,
        )
        return list(results)

    async def __call__(self, request: Request) -> Response:
        """Answer an HTTP request with the rerank server's app."""
        return await _call_asgi(self.app, request)


async def _call_asgi(asgi_app: ASGIApp, request: Request) -> Response:
    """Run ``asgi_app`` on ``request`` and return its complete response."""
    start: Message | None = None
    chunks: list[bytes] = []

    async def send(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))

    try:
        await asgi_app(request.scope, request.receive, send)
    except Exception:
        # Starlette re-raises an unhandled error after its 500 handler has answered; keep
        # that answer (the server's JSON error shape). The traceback is already logged.
        if start is None:
            raise
    if start is None:
        msg = "The rerank app finished without sending a response."
        raise RuntimeError(msg)
    response = Response(b"".join(chunks), status_code=start["status"])
    response.raw_headers = list(start.get("headers", []))
    return response


def _batch_settings(config: Mapping[str, Any]) -> tuple[int, float]:
    unknown = set(config) - {"max_batch_size", "batch_wait_timeout_s"}
    if unknown:
        msg = (
            f"Unknown user_config keys {sorted(unknown)}; the rerank deployment takes "
            "'max_batch_size' and 'batch_wait_timeout_s'."
        )
        raise ValueError(msg)
    size = config.get("max_batch_size", DEFAULT_MAX_BATCH_SIZE)
    wait = config.get("batch_wait_timeout_s", DEFAULT_BATCH_WAIT_TIMEOUT_S)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        msg = f"max_batch_size must be a positive int, got {size!r}."
        raise ValueError(msg)
    if not isinstance(wait, (int, float)) or isinstance(wait, bool) or wait < 0:
        msg = f"batch_wait_timeout_s must be a number of seconds >= 0, got {wait!r}."
        raise ValueError(msg)
    return size, float(wait)


def _default_num_gpus() -> float:
    """1 GPU per replica when the Ray cluster (or, before ``ray.init``, this machine) has one."""
    import ray

    ray_api: Any = ray  # cluster_resources() is untyped
    if ray_api.is_initialized():
        return 1.0 if ray_api.cluster_resources().get("GPU", 0) > 0 else 0.0
    import torch

    return 1.0 if torch.cuda.is_available() else 0.0


def build_app(
    model: str | os.PathLike[str],
    *,
    num_replicas: int | None = None,
    num_gpus: float | None = None,
    num_cpus: float = 1.0,
    max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
    batch_wait_timeout_s: float = DEFAULT_BATCH_WAIT_TIMEOUT_S,
    max_ongoing_requests: int = DEFAULT_MAX_ONGOING_REQUESTS,
    autoscaling_config: Mapping[str, Any] | None = None,
    scorer_options: Mapping[str, Any] | None = None,
    api_key: str | None = None,
    max_documents: int = DEFAULT_MAX_DOCUMENTS,
    max_document_chars: int = DEFAULT_MAX_DOCUMENT_CHARS,
    name: str = "RerankPlugins",
) -> Application:
    """Build a Ray Serve application that serves ``model`` with the rerank HTTP API.

    Args:
        model: Hub id or local path (``str`` or ``os.PathLike``) of the cross-encoder (a
            path must exist on every node).
        num_replicas: Fixed number of replicas (default 1). Leave it unset when passing
            ``autoscaling_config``. For one replica per GPU, use your GPU count.
        num_gpus: GPUs per replica: 1 gives each replica its own GPU, 0.5 packs two on one.
            ``None`` picks 1 when the cluster has GPUs (or, before ``ray.init``, when this
            machine has CUDA), else 0. With 0, replicas run on CPU.
        num_cpus: CPUs reserved per replica.
        max_batch_size: Concurrent HTTP requests a replica scores together.
        batch_wait_timeout_s: Longest wait for a batch to fill.
        max_ongoing_requests: Requests a replica accepts at once (keep it above
            ``max_batch_size``, or batches never fill).
        autoscaling_config: Ray Serve autoscaling, e.g. ``{"min_replicas": 1,
            "max_replicas": 8, "target_ongoing_requests": 16}``.
        scorer_options: Keyword arguments of :func:`rerank_plugins.get_scorer`
            (``device``, ``dtype``, ``max_length``, ``batch_size``...).
        api_key: Require ``Authorization: Bearer <api_key>``. ``None`` makes each replica
            read ``$RERANK_PLUGINS_API_KEY`` (from its runtime environment) instead, which
            keeps the key out of the deployment's arguments.
        max_documents: Most documents per request (413 above).
        max_document_chars: Most characters per document and in the query (413 above).
        name: The deployment's name.

    Returns:
        The application, for ``serve.run(...)`` or ``serve run``.

    Raises:
        ValueError: An option is out of range, or both ``num_replicas`` and
            ``autoscaling_config`` were given.
    """
    model = os.fspath(model) if isinstance(model, os.PathLike) else model
    if not isinstance(model, str) or not model.strip():
        msg = f"model must be a hub id or a local path, got {model!r}."
        raise ValueError(msg)
    if num_replicas is not None and autoscaling_config is not None:
        msg = (
            f"Pass num_replicas={num_replicas!r} or autoscaling_config, not both: with "
            "autoscaling, Ray Serve sets the replica count (use min_replicas/max_replicas)."
        )
        raise ValueError(msg)
    _positive_int("num_replicas", 1 if num_replicas is None else num_replicas)
    _positive_int("max_ongoing_requests", max_ongoing_requests)
    _positive_int("max_documents", max_documents)
    _positive_int("max_document_chars", max_document_chars)
    user_config = {"max_batch_size": max_batch_size, "batch_wait_timeout_s": batch_wait_timeout_s}
    _batch_settings(user_config)
    gpus = _default_num_gpus() if num_gpus is None else _non_negative("num_gpus", num_gpus)
    cpus = _non_negative("num_cpus", num_cpus)
    options = dict(scorer_options or {})
    if gpus == 0:
        # A replica without a GPU must not pick one up through device="auto".
        options.setdefault("device", "cpu")
    server_options: dict[str, Any] = {
        "max_documents": max_documents,
        "max_document_chars": max_document_chars,
    }
    if api_key is not None:
        server_options["api_key"] = api_key
    deployment_options: dict[str, Any] = {
        "name": name,
        "ray_actor_options": {"num_cpus": cpus, "num_gpus": gpus},
        "max_ongoing_requests": max_ongoing_requests,
        "user_config": user_config,
    }
    if autoscaling_config is not None:
        deployment_options["autoscaling_config"] = dict(autoscaling_config)
    else:
        deployment_options["num_replicas"] = 1 if num_replicas is None else num_replicas
    logger.info("Building %s: model=%r, options=%r", name, model, deployment_options)
    deployment: Any = RerankDeployment  # a ray Deployment; its stubs type it as the class
    application: Application = deployment.options(**deployment_options).bind(
        model, options, server_options
    )
    return application


# Arguments of `serve run rerank_plugins.ray_serve:app key=value ...`: name -> type.
_APP_ARGS: dict[str, type] = {
    "model": str,
    "num_replicas": int,
    "num_gpus": float,
    "num_cpus": float,
    "max_batch_size": int,
    "batch_wait_timeout_s": float,
    "max_ongoing_requests": int,
    "min_replicas": int,
    "max_replicas": int,
    "target_ongoing_requests": float,
    "api_key": str,
    "max_documents": int,
    "max_document_chars": int,
    "name": str,
}
_SCORER_ARGS: dict[str, type] = {
    "revision": str,
    "device": str,
    "dtype": str,
    "max_length": int,
    "batch_size": int,
    "max_batch_tokens": int,
    "activation": str,
    "local_files_only": bool,
    "trust_remote_code": bool,
    "long_passages": str,
    "max_wait_ms": float,
}
_AUTOSCALING_ARGS = ("min_replicas", "max_replicas", "target_ongoing_requests")


def app(args: dict[str, Any]) -> Application:
    """Application builder for ``serve run rerank_plugins.ray_serve:app key=value ...``.

    Takes the :func:`build_app` options (``model`` is required) plus the scorer options
    (``device``, ``dtype``, ``max_length``, ``batch_size``, ``revision``...) as strings
    (or native values from a Serve config file). ``min_replicas``, ``max_replicas`` and
    ``target_ongoing_requests`` turn on autoscaling.
    """
    unknown = set(args) - set(_APP_ARGS) - set(_SCORER_ARGS)
    if unknown:
        msg = (
            f"Unknown argument(s) {sorted(unknown)} for rerank_plugins.ray_serve:app. Valid: "
            f"{', '.join(sorted({**_APP_ARGS, **_SCORER_ARGS}))}."
        )
        raise ValueError(msg)
    if "model" not in args:
        msg = (
            "rerank_plugins.ray_serve:app needs model=<hub id or path>, e.g. "
            "`serve run rerank_plugins.ray_serve:app model=BAAI/bge-reranker-v2-m3`."
        )
        raise ValueError(msg)
    values: dict[str, Any] = {}
    scorer_options: dict[str, Any] = {}
    for key, value in args.items():
        if key in _APP_ARGS:
            values[key] = _convert(key, value, _APP_ARGS[key])
        else:
            scorer_options[key] = _convert(key, value, _SCORER_ARGS[key])
    autoscaling = {key: values.pop(key) for key in _AUTOSCALING_ARGS if key in values}
    model = values.pop("model")
    return build_app(
        model,
        autoscaling_config=autoscaling or None,
        scorer_options=scorer_options,
        **values,
    )


def _convert(key: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no"):
            return False
    elif kind in (int, float) and not isinstance(value, bool):
        try:
            return kind(value)
        except (TypeError, ValueError):
            pass
    elif kind is str and isinstance(value, str):
        return value
    expected = {bool: "true or false", int: "an int", float: "a number", str: "a string"}[kind]
    msg = f"{key} must be {expected}, got {value!r}."
    raise ValueError(msg)


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        msg = f"{name} must be a positive int, got {value!r}."
        raise ValueError(msg)
    return value


def _non_negative(name: str, value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        msg = f"{name} must be a number >= 0, got {value!r}."
        raise ValueError(msg)
    return float(value)
