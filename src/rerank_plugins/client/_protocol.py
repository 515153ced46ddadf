"""The client's protocol logic, without I/O: what to send, where, and what an answer means.

The bodies, paths and response shapes are the :mod:`rerank_plugins.wire` dialects'; this
module decides which dialect (probing with ``protocol="auto"``) and what each status means.

:meth:`Protocol.exchange` is a generator that yields the :class:`Request` to send and is
sent back the final ``httpx.Response`` (after the transport's retries); it returns the
scores, or raises. The sync and async paths run it with the same loop (:func:`drive`
with a blocking send, :func:`adrive` with an awaited one), so probing, reading results
and telling "split the request" from "fail" are written once. Splitting a large call into
requests (:meth:`Protocol.split`, :meth:`Protocol.learn_limit`) is planned here too; only
the order of sending (one after another, or a few at a time) is left to ``RemoteScorer``.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Awaitable, Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rerank_plugins.client._messages import (
    detection_error,
    is_length_error,
    not_json_error,
    status_error,
)
from rerank_plugins.errors import RemoteRerankError

if TYPE_CHECKING:
    import httpx

    from rerank_plugins.client._settings import Settings
    from rerank_plugins.wire import Dialect

__all__ = ["Exchange", "Protocol", "Request", "TooManyDocumentsError", "adrive", "drive"]

logger = logging.getLogger(__name__)

# What protocol="auto" tries, in order, until one is not refused: the Cohere v1 shape at
# /v1/rerank (ours, Jina, vLLM...), then TEI's and Infinity's /rerank.
_AUTO_DIALECTS = ("jina", "tei", "infinity")
# Statuses that mean "this is not the endpoint (or not its body shape)" while probing.
_PROBE_FALLBACK_STATUSES = frozenset({400, 404, 405, 415, 422})
# Limits that servers name in their "too many documents" errors: ours (413), TEI's
# --max-client-batch-size (413), and pydantic's list length error (Infinity answers 422).
_LIMIT_PATTERNS = (
    re.compile(r"max_documents=(\d+)"),
    re.compile(r"maximum allowed batch size (\d+)"),
    re.compile(r"at most (\d+) items"),
)


@dataclass(frozen=True, slots=True)
class Request:
    """One POST to send: the transports add the headers and the timeout."""

    url: str
    body: dict[str, Any]


Exchange = Generator[Request, "httpx.Response", list[float]]
"""Yields requests, is sent their answers, returns one score per document."""


class TooManyDocumentsError(Exception):
    """A request was refused for its size; ``limit`` is the server's limit when it said so."""

    def __init__(self, error: RemoteRerankError, limit: int | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.limit = limit


class Protocol:
    """The rerank API of one server (found on first use with ``auto``) and its size limit.

    Thread-safe: the learned API and limit are the only state, and only ever settle.
    """

    def __init__(self, settings: Settings) -> None:
        # The wire formats build pydantic models: load them with the first scorer, not with
        # `import rerank_plugins.client`.
        from rerank_plugins.wire import get_dialect

        self._settings = settings
        self._root = settings.root
        self._candidates = tuple(map(get_dialect, _AUTO_DIALECTS))
        auto = settings.protocol == "auto"
        self._dialect: Dialect[Any] | None = None if auto else get_dialect(settings.protocol)
        self._learned_limit: int | None = None
        self._lock = threading.Lock()

    @property
    def detecting(self) -> bool:
        """Whether the API is still to be found (the next request may probe several)."""
        return self._dialect is None

    def exchange(self, query: str, documents: list[str]) -> Exchange:
        """Score ``documents`` with one request, or, while detecting, a probe per candidate."""
        dialects = (self._dialect,) if self._dialect is not None else self._candidates
        refused: list[tuple[str, str, httpx.Response]] = []
        for dialect in dialects:
            url = (self._root if dialect.from_root else self._settings.base_url) + dialect.path
            body = dialect.request_body(query, documents, self._settings.model)
            body.update(self._settings.extra_body)
            response = yield Request(url, body)
            scores = self._read(dialect, url, response, len(documents), probing=len(dialects) > 1)
            if scores is not None:
                return scores
            refused.append((dialect.name, url, response))
        raise detection_error(self._settings, refused)

    def _read(
        self,
        dialect: Dialect[Any],
        url: str,
        response: httpx.Response,
        count: int,
        *,
        probing: bool,
    ) -> list[float] | None:
        """Scores of a final answer; ``None`` means "try the next dialect" while probing."""
        status = response.status_code
        if 200 <= status < 300:
            try:
                payload = response.json()
            except ValueError as err:
                raise not_json_error(url, response) from err
            from rerank_plugins.wire import ResponseShapeError  # loaded in __init__

            try:
                scores = dialect.read_scores(payload, count)
            except ResponseShapeError as err:
                msg = f"POST {url} answered {status} {err}"
                raise RemoteRerankError(msg, status_code=status, body=response.text) from err
            if self._dialect is None:
                logger.info("%s speaks the %r rerank API; using it from now on.", url, dialect.name)
                self._dialect = dialect
            return scores
        limit = _limit_in(response.text) if status in (413, 422) else None
        if limit is not None or (status == 413 and not is_length_error(response.text)):
            error = status_error(self._settings, dialect.name, dialect.path, url, response, count)
            raise TooManyDocumentsError(error, limit)
        if probing and status in _PROBE_FALLBACK_STATUSES:
            logger.debug("%s answered %d; trying the next rerank API.", url, status)
            return None
        raise status_error(self._settings, dialect.name, dialect.path, url, response, count)

    # --- splitting ----------------------------------------------------------------------------

    def split(self, start: int, stop: int) -> list[tuple[int, int]] | None:
        """The requests to send for documents ``[start, stop)``; ``None``: one is enough."""
        limits = [n for n in (self._settings.max_documents_per_request, self._learned_limit) if n]
        limit = min(limits) if limits else None
        if limit is None or stop - start <= limit:
            return None
        return [(s, min(s + limit, stop)) for s in range(start, stop, limit)]

    def learn_limit(self, refused: TooManyDocumentsError, size: int) -> None:
        """Lower the documents-per-request limit after a request of ``size`` was refused."""
        if size <= 1:
            raise refused.error
        limit = refused.limit if refused.limit is not None and refused.limit < size else size // 2
        with self._lock:
            if self._learned_limit is None or limit < self._learned_limit:
                self._learned_limit = limit
        logger.warning(
            "%s refused %d documents in one request; sending at most %d per request.",
            self._settings.base_url,
            size,
            limit,
        )


def drive(exchange: Exchange, send: Callable[[Request], httpx.Response]) -> list[float]:
    """Run ``exchange`` to its end with a blocking ``send``."""
    request = next(exchange)
    while True:
        try:
            request = exchange.send(send(request))
        except StopIteration as done:
            scores: list[float] = done.value
            return scores


async def adrive(
    exchange: Exchange, send: Callable[[Request], Awaitable[httpx.Response]]
) -> list[float]:
    """Run ``exchange`` to its end with an async ``send``."""
    request = next(exchange)
    while True:
        try:
            request = exchange.send(await send(request))
        except StopIteration as done:
            scores: list[float] = done.value
            return scores


def _limit_in(text: str) -> int | None:
    for pattern in _LIMIT_PATTERNS:
        match = pattern.search(text)
        if match:
            limit = int(match.group(1))
            return limit if limit >= 1 else None
    return None
