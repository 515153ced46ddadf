"""One Ray Serve replica: a loaded scorer behind the rerank server's FastAPI app.

Requests reach the app through ``__call__`` (see the package docstring for why not
``@serve.ingress``); ``@serve.batch`` gathers concurrent requests into one scoring batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rerank_plugins._optional import require
from rerank_plugins._results import RankResult, check_selection, select_top
from rerank_plugins.ray_serve._options import (
    DEFAULT_BATCH_WAIT_TIMEOUT_S,
    DEFAULT_MAX_BATCH_SIZE,
    batch_settings,
)

require("ray", extra="ray", feature="The Ray Serve deployment", package="ray[serve]")

from ray import serve  # noqa: E402
from starlette.requests import Request  # noqa: E402
from starlette.responses import Response  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.types import ASGIApp, Message

    from rerank_plugins.scorer import CrossEncoderScorer

logger = logging.getLogger(__name__)


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
        size, wait = batch_settings(user_config)
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
