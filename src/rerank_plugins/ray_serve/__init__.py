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

import logging
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from rerank_plugins.ray_serve._deployment import RerankDeployment
from rerank_plugins.ray_serve._options import (
    DEFAULT_BATCH_WAIT_TIMEOUT_S,
    DEFAULT_MAX_BATCH_SIZE,
    DEFAULT_MAX_ONGOING_REQUESTS,
    batch_settings,
    non_negative,
    parse_app_args,
    positive_int,
)
from rerank_plugins.server._defaults import DEFAULT_MAX_DOCUMENT_CHARS, DEFAULT_MAX_DOCUMENTS

if TYPE_CHECKING:
    from ray.serve import Application

__all__ = [
    "DEFAULT_BATCH_WAIT_TIMEOUT_S",
    "DEFAULT_MAX_BATCH_SIZE",
    "RerankDeployment",
    "app",
    "build_app",
]

logger = logging.getLogger(__name__)


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
    positive_int("num_replicas", 1 if num_replicas is None else num_replicas)
    positive_int("max_ongoing_requests", max_ongoing_requests)
    positive_int("max_documents", max_documents)
    positive_int("max_document_chars", max_document_chars)
    user_config = {"max_batch_size": max_batch_size, "batch_wait_timeout_s": batch_wait_timeout_s}
    batch_settings(user_config)
    gpus = _default_num_gpus() if num_gpus is None else non_negative("num_gpus", num_gpus)
    cpus = non_negative("num_cpus", num_cpus)
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


def app(args: dict[str, Any]) -> Application:
    """Application builder for ``serve run rerank_plugins.ray_serve:app key=value ...``.

    Takes the :func:`build_app` options (``model`` is required) plus the scorer options
    (``device``, ``dtype``, ``max_length``, ``batch_size``, ``revision``...) as strings
    (or native values from a Serve config file). ``min_replicas``, ``max_replicas`` and
    ``target_ongoing_requests`` turn on autoscaling.
    """
    parsed = parse_app_args(args)
    return build_app(
        parsed.model,
        autoscaling_config=parsed.autoscaling_config,
        scorer_options=parsed.scorer_options,
        **parsed.options,
    )
