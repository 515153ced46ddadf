"""The scorer an app serves: the protocol it follows, loading it, and "is it ready?".

The scorer lives on ``app.state.scorer`` (``None`` while it loads, with the failure on
``app.state.load_error``); a scorer that reports its queue is also ``app.state.queue_stats``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from rerank_plugins.server._errors import APIError
from rerank_plugins.server._metrics import QueueStats

if TYPE_CHECKING:
    from fastapi import FastAPI, Request

    from rerank_plugins._results import RankResult

__all__ = ["RerankScorer", "load_scorer", "ready_scorer", "set_scorer"]

logger = logging.getLogger(__name__)

_RETRY_AFTER_LOADING_S = "5"


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


def set_scorer(app: FastAPI, scorer: RerankScorer) -> None:
    """Serve ``scorer`` from now on."""
    app.state.queue_stats = scorer if isinstance(scorer, QueueStats) else None
    app.state.scorer = scorer
    app.state.metrics.model_loaded.labels(str(scorer.model)).set(1)


async def load_scorer(app: FastAPI, model: str, options: dict[str, Any]) -> None:
    """Load ``model`` in a thread and serve it; a failure is kept for ``/health`` and logged."""
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
    set_scorer(app, scorer)
    logger.info("Loaded model %r in %.1f s", model, time.perf_counter() - start)


def ready_scorer(request: Request) -> RerankScorer:
    """The scorer, or 503 while it loads (with ``Retry-After``) or after it failed to."""
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
