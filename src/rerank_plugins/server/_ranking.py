"""Scoring one request: admission, the deadline, cancellation on disconnect, error mapping.

Nobody waits for work nobody wants: a request whose client disconnects has its scoring job
cancelled (dropped if still queued), a request that would wait more than
``max_queue_seconds`` of work gets 429 with ``Retry-After``, and a request with a deadline
(``request_timeout``, or the ``X-Request-Timeout`` header) gets 503 when it cannot finish in
time and 504 when its deadline passes while it waits.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any, TypeVar

from rerank_plugins.errors import OverloadedError
from rerank_plugins.server._defaults import REQUEST_TIMEOUT_HEADER
from rerank_plugins.server._errors import APIError
from rerank_plugins.server._requests import check_limits, client_gone, request_timeout

if TYPE_CHECKING:
    from fastapi import Request

    from rerank_plugins._results import RankResult
    from rerank_plugins.server._metrics import QueueStats
    from rerank_plugins.server._scorer_state import RerankScorer
    from rerank_plugins.server._settings import Settings
    from rerank_plugins.wire import Inputs

__all__ = ["rank"]

_RETRY_AFTER_OVERLOADED_S = "1"

_T = TypeVar("_T")


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
    settings: Settings = request.app.state.settings
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
        raise client_gone(request, "before its answer; its job was cancelled")
    raise APIError(
        504,
        f"The request's deadline of {timeout:g} s passed before it was scored; its job was "
        f"cancelled. Send fewer documents, retry later, or allow more time "
        f"({REQUEST_TIMEOUT_HEADER} header, `rerank-plugins serve --request-timeout`).",
        error_type="deadline_error",
    )


async def rank(
    request: Request, scorer: RerankScorer, inputs: Inputs
) -> tuple[list[RankResult], int]:
    """Rank ``inputs`` within the limits and the deadline; the results, best first, and tokens."""
    query, texts, top_n = inputs.query, inputs.texts, inputs.top_n
    check_limits(request, query, texts)
    timeout = request_timeout(request)
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
