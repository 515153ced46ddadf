"""When to send a request again, and how long to wait first: one policy for both transports.

The loop itself is tenacity's (``Retrying`` in the sync transport, ``AsyncRetrying`` in the
async one), built from :meth:`RetryPolicy.options`, so the two share every decision:

- retried: connection errors and dropped connections, connect, pool and write timeouts (the
  server never got the whole request), and 429, 502, 503 ("try again later");
- retried only with ``retry_read_timeouts=True``: read timeouts and 504, since the server is
  most likely still busy with that very request;
- never retried: any other answer (500 included: usually this request's own failure).

An attempt's outcome is a value, the response or the ``httpx.HTTPError`` it raised, so that
tenacity's ``retry_if_result`` sees both and the last outcome comes back for
:meth:`RetryPolicy.settle` to turn into the answer or the error.

The wait is ``Retry-After`` (seconds or an HTTP date, at most 60 s) when the answer has one,
else tenacity's ``wait_exponential`` (``retry_backoff * 2**attempt``, at most 30 s) shortened
by up to 25 % of jitter. Tenacity has no Retry-After strategy, hence :meth:`RetryPolicy._wait`.

Why tenacity rather than a hand-written loop: it is maintained, already installed with
langchain-core, and gives one loop for sync and async code (the client had the loop twice).
Cost, measured: about 25 us per request over a plain loop (2-core machine shared with
other jobs), nothing beside an HTTP round trip. This module is imported once ``httpx`` and
``tenacity`` are known to be installed.
"""

from __future__ import annotations

import email.utils
import logging
import math
import random
import time
from typing import TYPE_CHECKING, Any, TypeAlias

import httpx
import tenacity

from rerank_plugins.client._messages import GATEWAY_TIMEOUT, exhausted_error, transport_error

if TYPE_CHECKING:
    from rerank_plugins.client._settings import Settings

Outcome: TypeAlias = httpx.Response | httpx.HTTPError
"""What one attempt gives: the answer, or the transport error it raised."""

__all__ = ["Outcome", "RetryPolicy", "retry_after"]

logger = logging.getLogger(__name__)

_MAX_BACKOFF_S = 30.0
_MAX_RETRY_AFTER_S = 60.0
_JITTER = 0.25
# Statuses retried by default: overload, a gateway that could not reach the server, and
# "unavailable" (still loading, or no time for the request now); all say "try again later".
_RETRY_STATUSES = frozenset({429, 502, 503})


class RetryPolicy:
    """Which outcomes to retry, the wait before each retry, and the error once it gives up."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self._backoff = tenacity.wait_exponential(
            multiplier=settings.retry_backoff, max=_MAX_BACKOFF_S
        )

    def options(self, url: str) -> dict[str, Any]:
        """Keyword arguments of ``tenacity.Retrying``/``AsyncRetrying`` for a POST to ``url``."""
        return {
            "stop": tenacity.stop_after_attempt(self._settings.max_retries + 1),
            "retry": tenacity.retry_if_result(self.retryable),
            "wait": self._wait,
            "before_sleep": lambda state: self._log(url, state),
            # Out of attempts: return the last outcome (instead of raising tenacity's
            # RetryError) for settle() to explain.
            "retry_error_callback": _last_outcome,
        }

    def retryable(self, outcome: Outcome) -> bool:
        """Whether to send the request again after ``outcome``."""
        read_timeouts = self._settings.retry_read_timeouts
        if isinstance(outcome, httpx.Response):
            if outcome.status_code == GATEWAY_TIMEOUT:
                return read_timeouts
            return outcome.status_code in _RETRY_STATUSES
        if isinstance(outcome, httpx.ReadTimeout):
            return read_timeouts
        # Connect, pool and write timeouts: the server never got the whole request; network
        # and protocol errors are mostly stale keep-alive connections.
        return isinstance(
            outcome, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
        )

    def settle(self, url: str, outcome: Outcome, attempts: int) -> httpx.Response:
        """The answer to act on, or the error after the last of ``attempts`` attempts."""
        if isinstance(outcome, Exception):
            raise transport_error(self._settings, url, outcome, attempts) from outcome
        if self.retryable(outcome):
            raise exhausted_error(url, outcome, attempts)
        return outcome

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Seconds before the next attempt: ``Retry-After`` if given, else jittered backoff."""
        outcome = _last_outcome(state)
        if isinstance(outcome, httpx.Response):
            delay = retry_after(outcome.headers.get("Retry-After"))
            if delay is not None:
                return delay
        return float(self._backoff(state)) * (1 - _JITTER * random.random())

    def _log(self, url: str, state: tenacity.RetryCallState) -> None:
        outcome = _last_outcome(state)
        reason = (
            f"{type(outcome).__name__}: {outcome}"
            if isinstance(outcome, Exception)
            else f"status {outcome.status_code}"
        )
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        logger.warning(
            "POST %s failed (%s); retry %d of %d in %.2f s.",
            url,
            reason,
            state.attempt_number,
            self._settings.max_retries,
            delay,
        )


def _last_outcome(state: tenacity.RetryCallState) -> Any:
    """The value the last attempt returned (attempts return errors instead of raising)."""
    if state.outcome is None:  # pragma: no cover - tenacity sets it before every callback
        msg = "tenacity called back before the first attempt"
        raise RuntimeError(msg)
    return state.outcome.result()


def retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or HTTP date), capped at 60."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - time.time()
    if math.isnan(seconds):
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER_S)
