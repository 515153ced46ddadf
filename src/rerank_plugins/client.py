"""A scorer that reranks through a remote service: our server, TEI, vLLM, Infinity, Jina, Cohere.

:class:`RemoteScorer` has the same interface as the local scorer (``model``, ``score``,
``ascore``, ``rank``, ``arank``), so both adapters take it::

    from rerank_plugins import RemoteScorer
    from rerank_plugins.langchain import CrossEncoderRerank

    reranker = CrossEncoderRerank(scorer=RemoteScorer("http://rerank:8080"), top_n=5)

Wire formats (request bodies; every response is mapped back by its ``index`` field, never
by position):

=============  ======================  ====================================================
protocol       endpoint                request body
=============  ======================  ====================================================
``cohere``     ``POST /v2/rerank``     ``model, query, documents``
``jina``       ``POST /v1/rerank``     ``model, query, documents, return_documents=false``
``vllm``       ``POST /v1/rerank``     ``model, query, documents``
``infinity``   ``POST /rerank``        ``model, query, documents, return_documents=false,
                                       raw_scores=false``
``tei``        ``POST /rerank``        ``query, texts, truncate=true, raw_scores=false,
                                       return_text=false``
=============  ======================  ====================================================

``model`` is sent only when given. ``top_n`` is never sent: every document is scored, and
``top_n`` and ``score_threshold`` are applied here, so that split requests merge exactly.

``protocol="auto"`` (the default) finds the API with the first request and then keeps it:

1. the ``jina`` request (Cohere v1 shape) at ``/v1/rerank``: our server, Jina, vLLM,
   Infinity started with ``--url-prefix /v1``, Cohere's v1 API;
2. if that answers 400, 404, 405, 415 or 422, the ``tei`` request at ``/rerank``: TEI;
3. if that answers one of those too, the ``infinity`` request at ``/rerank``: Infinity
   without a URL prefix, or any Cohere-shaped ``/rerank``.

Any other answer (a success, 401, 413, 429, 5xx...) settles the endpoint. For ``cohere``,
``jina`` and ``vllm``, a ``base_url`` ending in ``/v1`` or ``/v2`` is the server root (so
``https://api.jina.ai/v1`` and vLLM's OpenAI-style ``http://host:8000/v1`` both work); for
``tei``, ``infinity`` and the ``/rerank`` steps of ``auto``, ``base_url`` is used as it is.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import math
import random
import re
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from rerank_plugins._context import DEFAULT_NEAR_DUPLICATE_THRESHOLD, ContextOptions, Order
from rerank_plugins._optional import require
from rerank_plugins._results import RankResult, check_inputs, select_top
from rerank_plugins._version import __version__
from rerank_plugins.errors import RemoteRerankError
from rerank_plugins.server._defaults import REQUEST_TIMEOUT_HEADER

if TYPE_CHECKING:
    from types import TracebackType

    import httpx
    from typing_extensions import Self

__all__ = ["RemoteProtocol", "RemoteScorer"]

logger = logging.getLogger(__name__)

RemoteProtocol = Literal["auto", "cohere", "jina", "tei", "vllm", "infinity"]
_PROTOCOLS = ("auto", "cohere", "jina", "tei", "vllm", "infinity")

# Statuses that mean "this is not the endpoint (or not its body shape)" while probing.
_PROBE_FALLBACK_STATUSES = frozenset({400, 404, 405, 415, 422})
_MAX_BACKOFF_S = 30.0
_MAX_RETRY_AFTER_S = 60.0
# Statuses retried by default: overload, a gateway that could not reach the server, and
# "unavailable" (still loading, or no time for the request now); all say "try again later".
_RETRY_STATUSES = frozenset({429, 502, 503})
# A gateway's timeout: the server may still be busy with the request, as after a ReadTimeout.
_GATEWAY_TIMEOUT = 504
_MAX_PARALLEL_REQUESTS = 4
_MAX_MESSAGE_CHARS = 500
# Limits that servers name in their "too many documents" errors: ours (413), TEI's
# --max-client-batch-size (413), and pydantic's list length error (Infinity answers 422).
_LIMIT_PATTERNS = (
    re.compile(r"max_documents=(\d+)"),
    re.compile(r"maximum allowed batch size (\d+)"),
    re.compile(r"at most (\d+) items"),
)


@dataclass(frozen=True)
class _Route:
    """One way to call a rerank API: where to post and what to send."""

    protocol: str
    path: str
    from_root: bool
    """Whether ``path`` is appended to the server root (``base_url`` minus ``/v1``/``/v2``)."""
    documents_field: str
    extra: tuple[tuple[str, Any], ...]
    sends_model: bool = True

    def body(self, query: str, documents: list[str], model: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"query": query, self.documents_field: documents}
        if model is not None and self.sends_model:
            body["model"] = model
        body.update(self.extra)
        return body


_ROUTES = {
    "cohere": _Route("cohere", "/v2/rerank", True, "documents", ()),
    "jina": _Route("jina", "/v1/rerank", True, "documents", (("return_documents", False),)),
    # vLLM returns documents regardless and logs a warning for fields it does not know.
    "vllm": _Route("vllm", "/v1/rerank", True, "documents", ()),
    "infinity": _Route(
        "infinity",
        "/rerank",
        False,
        "documents",
        (("return_documents", False), ("raw_scores", False)),
    ),
    "tei": _Route(
        "tei",
        "/rerank",
        False,
        "texts",
        (("truncate", True), ("raw_scores", False), ("return_text", False)),
        sends_model=False,
    ),
}
_AUTO_ROUTES = (_ROUTES["jina"], _ROUTES["tei"], _ROUTES["infinity"])


class _TooManyDocumentsError(Exception):
    """A request was refused for its size; ``limit`` is the server's limit when it said so."""

    def __init__(self, error: RemoteRerankError, limit: int | None) -> None:
        super().__init__(str(error))
        self.error = error
        self.limit = limit


class RemoteScorer:
    """Scores (query, passage) pairs with a remote rerank service; thread-safe and shareable.

    It has the local scorer's interface, so ``CrossEncoderRerank(scorer=RemoteScorer(...))``
    works in both adapters. Requests that fail with 429, 502 or 503, or that could not be
    sent (connection errors, connect timeouts) are retried with exponential backoff,
    honouring ``Retry-After``; a request that timed out waiting for its answer is not
    (``retry_read_timeouts``). Other answers raise
    :class:`~rerank_plugins.errors.RemoteRerankError` at once. Each request carries an
    ``X-Request-Timeout`` header with ``timeout``, so our server drops work this client
    would no longer wait for (other servers ignore it). Large
    requests are split into several (``max_documents_per_request``, or the limit learned
    from a 413 answer) and the results merged. The sync methods use an ``httpx.Client``,
    the async ones an ``httpx.AsyncClient``; both are created on first use. Close them
    with :meth:`close` / :meth:`aclose` or use the scorer as a (async) context manager.

    Args:
        base_url: The server root, e.g. ``"http://localhost:8080"`` or
            ``"https://api.cohere.com"``. See the module docs for how paths are added.
        api_key: Sent as ``Authorization: Bearer <api_key>`` (our server, Cohere, Jina,
            vLLM, TEI and Infinity all read it there).
        protocol: ``"auto"`` (detect with the first request), ``"cohere"``, ``"jina"``,
            ``"tei"``, ``"vllm"`` or ``"infinity"``.
        model: The model name sent in each request (Cohere and Jina require one); also
            this scorer's :attr:`model`. Defaults to ``base_url`` as the name, sending none.
        timeout: Seconds for each request (connect, write, read and pool each).
        max_retries: Retries after the first attempt, for 429, 502, 503 and requests that
            could not be sent. 0 disables retries.
        retry_backoff: The first retry waits about this many seconds; each next one twice as
            long (with jitter, at most 30 s). A ``Retry-After`` header (up to 60 s) wins.
        retry_read_timeouts: Also retry a request whose answer did not come within
            ``timeout`` (``httpx.ReadTimeout``, or a 504 from a gateway). Off by default: the
            server is most likely still busy with that very request, and sending it again
            adds the same work to its queue.
        max_documents_per_request: Split larger requests into requests of this many
            documents. ``None`` sends everything at once, until a 413 teaches a limit.
        headers: Extra headers for every request.
        extra_body: Extra fields for every request body, e.g.
            ``{"truncate_prompt_tokens": 512}`` for vLLM or ``{"max_tokens_per_doc": 1024}``
            for Cohere.
        http_client: An ``httpx.Client`` to use for the sync methods (proxies, TLS...).
            Not closed by :meth:`close`.
        async_http_client: An ``httpx.AsyncClient`` for the async methods. Not closed by
            :meth:`aclose`.

    Example:
        >>> with RemoteScorer("http://localhost:8080") as scorer:
        ...     best = scorer.rank("What is a cross-encoder?", passages, top_n=3)
    """

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        protocol: RemoteProtocol = "auto",
        model: str | None = None,
        timeout: float = 30.0,
        max_retries: int = 3,
        retry_backoff: float = 0.5,
        retry_read_timeouts: bool = False,
        max_documents_per_request: int | None = None,
        headers: Mapping[str, str] | None = None,
        extra_body: Mapping[str, Any] | None = None,
        http_client: httpx.Client | None = None,
        async_http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self._httpx = require("httpx", extra="remote", feature="RemoteScorer")
        self.base_url = _check_base_url(base_url)
        if protocol not in _PROTOCOLS:
            msg = f"protocol must be one of {', '.join(map(repr, _PROTOCOLS))}, got {protocol!r}."
            raise ValueError(msg)
        if api_key is not None and (not isinstance(api_key, str) or not api_key):
            msg = f"api_key must be a non-empty string or None, got {api_key!r}."
            raise ValueError(msg)
        if model is not None and (not isinstance(model, str) or not model.strip()):
            msg = f"model must be a non-empty string or None, got {model!r}."
            raise ValueError(msg)
        self.protocol: RemoteProtocol = protocol
        self.model: str = model if model is not None else self.base_url
        self.timeout = _positive_number("timeout", timeout)
        self.max_retries = _non_negative_int("max_retries", max_retries)
        self.retry_backoff = _non_negative_number("retry_backoff", retry_backoff)
        if not isinstance(retry_read_timeouts, bool):
            msg = f"retry_read_timeouts must be True or False, got {retry_read_timeouts!r}."
            raise TypeError(msg)
        self.retry_read_timeouts = retry_read_timeouts
        self.max_documents_per_request = (
            None
            if max_documents_per_request is None
            else _positive_int("max_documents_per_request", max_documents_per_request)
        )
        self._model_param = model
        self._extra_body = dict(extra_body or {})
        self._headers = {"User-Agent": f"rerank-plugins/{__version__}", **dict(headers or {})}
        if REQUEST_TIMEOUT_HEADER.lower() not in {name.lower() for name in self._headers}:
            self._headers[REQUEST_TIMEOUT_HEADER] = f"{self.timeout:g}"
        if api_key is not None:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._api_key_set = api_key is not None
        self._root = re.sub(r"/v[12]$", "", self.base_url)
        self._route: _Route | None = None if protocol == "auto" else _ROUTES[protocol]
        self._learned_limit: int | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._user_client = http_client
        self._user_async_client = async_http_client
        self._client: httpx.Client | None = None
        self._async_client: httpx.AsyncClient | None = None
        self._async_loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    def __repr__(self) -> str:
        return (
            f"RemoteScorer(base_url={self.base_url!r}, protocol={self.protocol!r}, "
            f"model={self.model!r})"
        )

    # --- public API ---------------------------------------------------------------------------

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """Return one relevance score per passage, in input order."""
        return self._scores(query, check_inputs(query, passages))

    async def ascore(self, query: str, passages: Sequence[str]) -> list[float]:
        """Async :meth:`score`; split requests are sent up to 4 at a time."""
        return await self._ascores(query, check_inputs(query, passages))

    def rank(
        self,
        query: str,
        passages: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        max_context_tokens: int | None = None,
        length_function: Callable[[str], int] | str | None = None,
        deduplicate: bool = False,
        near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
        order: Order = "relevance",
    ) -> list[RankResult]:
        """Return passages best first, as :class:`RankResult` (ties keep input order).

        The context options work as in ``CrossEncoderScorer.rank``, on this side of the
        wire: duplicates are dropped before the request, and ``max_context_tokens`` needs
        a ``length_function`` (a remote service has no tokenizer here).
        """
        context = ContextOptions.create(
            top_n=top_n,
            score_threshold=score_threshold,
            max_context_tokens=max_context_tokens,
            length_function=length_function,
            deduplicate=deduplicate,
            near_duplicate_threshold=near_duplicate_threshold,
            order=order,
        )
        checked = check_inputs(query, passages)
        return context.rank(checked, functools.partial(self._rank_all, query)).results

    async def arank(
        self,
        query: str,
        passages: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        max_context_tokens: int | None = None,
        length_function: Callable[[str], int] | str | None = None,
        deduplicate: bool = False,
        near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
        order: Order = "relevance",
    ) -> list[RankResult]:
        """Async :meth:`rank`."""
        context = ContextOptions.create(
            top_n=top_n,
            score_threshold=score_threshold,
            max_context_tokens=max_context_tokens,
            length_function=length_function,
            deduplicate=deduplicate,
            near_duplicate_threshold=near_duplicate_threshold,
            order=order,
        )
        checked = check_inputs(query, passages)
        selection = await context.arank(checked, functools.partial(self._arank_all, query))
        return selection.results

    def _rank_all(self, query: str, passages: list[str]) -> list[RankResult]:
        return select_top(self._scores(query, passages), passages, None, None)

    async def _arank_all(self, query: str, passages: list[str]) -> list[RankResult]:
        return select_top(await self._ascores(query, passages), passages, None, None)

    def _scores(self, query: str, checked: list[str]) -> list[float]:
        """Scores of passages that already passed ``check_inputs``."""
        scores: list[float] = [math.nan] * len(checked)
        if checked:
            self._score_range(query, checked, 0, len(checked), scores)
        return scores

    async def _ascores(self, query: str, checked: list[str]) -> list[float]:
        """Async :meth:`_scores`."""
        scores: list[float] = [math.nan] * len(checked)
        if checked:
            await self._ascore_range(query, checked, 0, len(checked), scores)
        return scores

    def close(self) -> None:
        """Close the sync HTTP client this scorer created; later calls raise ``RuntimeError``.

        In async code, use :meth:`aclose`, which closes the async client too.
        """
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            self._async_client = None
        if client is not None:
            client.close()

    async def aclose(self) -> None:
        """Close the HTTP clients this scorer created; later calls raise ``RuntimeError``."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            async_client, self._async_client = self._async_client, None
            loop = self._async_loop() if self._async_loop is not None else None
        if client is not None:
            client.close()
        # A client made in another (maybe closed) event loop cannot be closed from this one.
        if async_client is not None and loop is asyncio.get_running_loop():
            await async_client.aclose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # --- splitting ----------------------------------------------------------------------------

    def _limit(self) -> int | None:
        limits = [n for n in (self.max_documents_per_request, self._learned_limit) if n]
        return min(limits) if limits else None

    def _learn_limit(self, refused: _TooManyDocumentsError, size: int, url: str) -> None:
        """Lower the documents-per-request limit after a request of ``size`` was refused."""
        if size <= 1:
            raise refused.error
        limit = refused.limit if refused.limit is not None and refused.limit < size else size // 2
        with self._lock:
            if self._learned_limit is None or limit < self._learned_limit:
                self._learned_limit = limit
        logger.warning(
            "%s refused %d documents in one request; sending at most %d per request.",
            url,
            size,
            limit,
        )

    def _chunks(self, start: int, stop: int) -> list[tuple[int, int]] | None:
        limit = self._limit()
        if limit is None or stop - start <= limit:
            return None
        return [(s, min(s + limit, stop)) for s in range(start, stop, limit)]

    def _score_range(
        self, query: str, passages: list[str], start: int, stop: int, out: list[float]
    ) -> None:
        chunks = self._chunks(start, stop)
        if chunks is not None:
            for chunk_start, chunk_stop in chunks:
                self._score_range(query, passages, chunk_start, chunk_stop, out)
            return
        try:
            out[start:stop] = self._post(query, passages[start:stop])
        except _TooManyDocumentsError as refused:
            self._learn_limit(refused, stop - start, self.base_url)
            self._score_range(query, passages, start, stop, out)

    async def _ascore_range(
        self, query: str, passages: list[str], start: int, stop: int, out: list[float]
    ) -> None:
        chunks = self._chunks(start, stop)
        if chunks is not None:
            if self._route is None:  # detect the API with one request, not several at once
                await self._ascore_range(query, passages, *chunks[0], out)
                chunks = chunks[1:]
            semaphore = asyncio.Semaphore(_MAX_PARALLEL_REQUESTS)

            async def run(chunk_start: int, chunk_stop: int) -> None:
                async with semaphore:
                    await self._ascore_range(query, passages, chunk_start, chunk_stop, out)

            tasks = [asyncio.ensure_future(run(a, b)) for a, b in chunks]
            try:
                await asyncio.gather(*tasks)
            except BaseException:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                raise
            return
        try:
            out[start:stop] = await self._apost(query, passages[start:stop])
        except _TooManyDocumentsError as refused:
            self._learn_limit(refused, stop - start, self.base_url)
            await self._ascore_range(query, passages, start, stop, out)

    # --- one request (with protocol detection) ------------------------------------------------

    def _routes(self) -> tuple[_Route, ...]:
        route = self._route
        return (route,) if route is not None else _AUTO_ROUTES

    def _url(self, route: _Route) -> str:
        return (self._root if route.from_root else self.base_url) + route.path

    def _post(self, query: str, documents: list[str]) -> list[float]:
        routes = self._routes()
        refused: list[tuple[str, httpx.Response]] = []
        for route in routes:
            url = self._url(route)
            response = self._send(url, self._body(route, query, documents))
            outcome = self._outcome(route, url, response, len(documents), probing=len(routes) > 1)
            if outcome is not None:
                return outcome
            refused.append((url, response))
        raise self._detection_error(refused)

    async def _apost(self, query: str, documents: list[str]) -> list[float]:
        routes = self._routes()
        refused: list[tuple[str, httpx.Response]] = []
        for route in routes:
            url = self._url(route)
            response = await self._asend(url, self._body(route, query, documents))
            outcome = self._outcome(route, url, response, len(documents), probing=len(routes) > 1)
            if outcome is not None:
                return outcome
            refused.append((url, response))
        raise self._detection_error(refused)

    def _body(self, route: _Route, query: str, documents: list[str]) -> dict[str, Any]:
        return {**route.body(query, documents, self._model_param), **self._extra_body}

    def _outcome(
        self, route: _Route, url: str, response: httpx.Response, count: int, *, probing: bool
    ) -> list[float] | None:
        """Scores of a final answer; ``None`` means "try the next route" while probing."""
        status = response.status_code
        if 200 <= status < 300:
            scores = _parse_scores(response, count, url, route.protocol)
            if self._route is None:
                logger.info(
                    "%s speaks the %r rerank API; using it from now on.", url, route.protocol
                )
                self._route = route
            return scores
        limit = _limit_in(response.text) if status in (413, 422) else None
        if limit is not None or (status == 413 and not _is_length_error(response.text)):
            raise _TooManyDocumentsError(self._status_error(route, url, response, count), limit)
        if probing and status in _PROBE_FALLBACK_STATUSES:
            logger.debug("%s answered %d; trying the next rerank API.", url, status)
            return None
        raise self._status_error(route, url, response, count)

    # --- transport with retries ---------------------------------------------------------------

    def _send(self, url: str, body: dict[str, Any]) -> httpx.Response:
        client = self._sync_client()
        failure: httpx.Response | Exception | None = None
        for attempt in range(self.max_retries + 1):
            try:
                response = client.post(url, json=body, headers=self._headers, timeout=self.timeout)
            except self._httpx.HTTPError as err:
                if not self._retryable_error(err):
                    raise self._transport_error(url, err, attempt + 1) from err
                failure = err
            else:
                if not self._retryable_status(response.status_code):
                    return response
                failure = response
            if attempt < self.max_retries:
                time.sleep(self._delay(attempt, failure, url))
        raise self._exhausted_error(url, failure)

    async def _asend(self, url: str, body: dict[str, Any]) -> httpx.Response:
        client = self._async_http_client()
        failure: httpx.Response | Exception | None = None
        for attempt in range(self.max_retries + 1):
            try:
                response = await client.post(
                    url, json=body, headers=self._headers, timeout=self.timeout
                )
            except self._httpx.HTTPError as err:
                if not self._retryable_error(err):
                    raise self._transport_error(url, err, attempt + 1) from err
                failure = err
            else:
                if not self._retryable_status(response.status_code):
                    return response
                failure = response
            if attempt < self.max_retries:
                await asyncio.sleep(self._delay(attempt, failure, url))
        raise self._exhausted_error(url, failure)

    def _retryable_error(self, err: Exception) -> bool:
        """Whether to send again after ``err``: yes unless it is a read timeout (opt-in).

        Connect, pool and write timeouts mean the server never got the whole request;
        network and protocol errors are mostly stale keep-alive connections.
        """
        httpx = self._httpx
        if isinstance(err, httpx.ReadTimeout):
            return self.retry_read_timeouts
        return isinstance(
            err, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)
        )

    def _retryable_status(self, status: int) -> bool:
        if status == _GATEWAY_TIMEOUT:
            return self.retry_read_timeouts
        return status in _RETRY_STATUSES

    def _delay(self, attempt: int, failure: httpx.Response | Exception | None, url: str) -> float:
        """Seconds before the next attempt: ``Retry-After`` if given, else jittered backoff."""
        delay = None
        if failure is not None and not isinstance(failure, Exception):
            delay = _retry_after(failure.headers.get("Retry-After"))
        if delay is None:
            delay = min(self.retry_backoff * 2**attempt, _MAX_BACKOFF_S)
            delay *= 1 - 0.25 * random.random()
        reason = (
            f"{type(failure).__name__}: {failure}"
            if isinstance(failure, Exception)
            else f"status {failure.status_code if failure is not None else '?'}"
        )
        logger.warning(
            "POST %s failed (%s); retry %d of %d in %.2f s.",
            url,
            reason,
            attempt + 1,
            self.max_retries,
            delay,
        )
        return delay

    # --- HTTP clients -------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            msg = f"{self!r} is closed; create a new RemoteScorer to send more requests."
            raise RuntimeError(msg)

    def _sync_client(self) -> httpx.Client:
        if self._user_client is not None:
            self._check_open()
            return self._user_client
        with self._lock:
            self._check_open()
            if self._client is None:
                self._client = self._httpx.Client(timeout=self.timeout)
            return self._client

    def _async_http_client(self) -> httpx.AsyncClient:
        if self._user_async_client is not None:
            self._check_open()
            return self._user_async_client
        loop = asyncio.get_running_loop()
        with self._lock:
            self._check_open()
            # httpx connections belong to the event loop that opened them: a scorer used from
            # several loops (e.g. one asyncio.run() per call) gets a client per loop.
            current = self._async_loop() if self._async_loop is not None else None
            if self._async_client is None or current is not loop:
                self._async_client = self._httpx.AsyncClient(timeout=self.timeout)
                self._async_loop = weakref.ref(loop)
            return self._async_client

    # --- errors -------------------------------------------------------------------------------

    def _status_error(
        self, route: _Route, url: str, response: httpx.Response, count: int
    ) -> RemoteRerankError:
        status = response.status_code
        detail = _server_message(response)
        head = f"POST {url} answered {status} {response.reason_phrase}: {detail}"
        if status in (401, 403):
            hint = (
                "The server needs an API key: pass RemoteScorer(..., api_key='...'), sent as "
                "'Authorization: Bearer <key>'."
                if not self._api_key_set
                else "The server rejected api_key; check that it is the server's key."
            )
        elif status == 404:
            hint = (
                f"Check base_url={self.base_url!r} (the server root, e.g. "
                f"'http://localhost:8080') and protocol={self.protocol!r}, which posts to "
                f"{route.path}."
            )
        elif status == 413:
            hint = (
                "A document (or the query) is too long for the server. Shorten it, or raise "
                "the server's limit."
                if count == 1 or _is_length_error(response.text)
                else "The request was too large for the server."
            )
        elif status == _GATEWAY_TIMEOUT:
            hint = (
                "The answer did not come in time; raise the server's or the gateway's timeout, "
                "send fewer documents per request (max_documents_per_request=), or pass "
                "retry_read_timeouts=True to retry."
            )
        elif status >= 500:
            hint = "The server failed; check its logs. Server errors are not retried."
        elif status in (400, 415, 422):
            hint = (
                f"The server rejected the {route.protocol!r} request body; check that "
                f"protocol={self.protocol!r} matches the server (or use protocol='auto')."
            )
            if self._model_param is None and route.protocol in ("cohere", "jina"):
                hint += f" The {route.protocol} API needs a model name: pass model='...'."
        else:
            hint = ""
        message = f"{_sentence(head)} {hint}".rstrip()
        return RemoteRerankError(message, status_code=status, body=response.text)

    def _exhausted_error(
        self, url: str, failure: httpx.Response | Exception | None
    ) -> RemoteRerankError:
        attempts = self.max_retries + 1
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        if isinstance(failure, Exception):
            return self._transport_error(url, failure, attempts)
        if failure is None:  # pragma: no cover - the loop always runs once
            return RemoteRerankError(f"POST {url} was not attempted.")
        status = failure.status_code
        hint = (
            "The server is overloaded; send fewer or smaller requests, or raise max_retries="
            if status == 429
            else "The server is unavailable; check its logs, or retry later (max_retries= sets "
            "how often)"
        )
        head = f"POST {url} answered {status} {failure.reason_phrase} after {tries}: "
        message = f"{_sentence(head + _server_message(failure))} {hint}."
        return RemoteRerankError(message, status_code=status, body=failure.text)

    def _transport_error(self, url: str, err: Exception, attempts: int) -> RemoteRerankError:
        tries = f"{attempts} attempt{'s' if attempts > 1 else ''}"
        if isinstance(err, self._httpx.TimeoutException):
            message = (
                f"POST {url} timed out after {self.timeout:g} s ({tries}; "
                f"{type(err).__name__}). Raise timeout= (now {self.timeout:g}), or send fewer "
                "documents per request with max_documents_per_request=."
            )
            if isinstance(err, self._httpx.ReadTimeout) and not self.retry_read_timeouts:
                message += (
                    " Read timeouts are not retried, as the server is likely still busy with "
                    "the request; retry_read_timeouts=True retries them."
                )
        elif isinstance(err, (self._httpx.NetworkError, self._httpx.RemoteProtocolError)):
            message = (
                f"Could not reach {url} ({tries}; {type(err).__name__}: {err}). Check that the "
                f"server is running and that base_url={self.base_url!r} is right."
            )
        else:
            message = f"POST {url} failed: {type(err).__name__}: {err}."
        return RemoteRerankError(message)

    def _detection_error(self, refused: list[tuple[str, httpx.Response]]) -> RemoteRerankError:
        tried = "; ".join(
            f"POST {url} ({route.protocol} body) -> {response.status_code}: "
            f"{_server_message(response)}"
            for (url, response), route in zip(refused, _AUTO_ROUTES, strict=False)
        )
        informative = [r for _, r in refused if r.status_code != 404] or [refused[0][1]]
        last = informative[-1]
        message = (
            f"Found no rerank API at {self.base_url!r}. Tried: {tried}. Check base_url, or "
            "pass protocol= explicitly ('cohere', 'jina', 'tei', 'vllm' or 'infinity')."
        )
        return RemoteRerankError(message, status_code=last.status_code, body=last.text)


# --- helpers ---------------------------------------------------------------------------------


def _parse_scores(response: httpx.Response, count: int, url: str, protocol: str) -> list[float]:
    """Map a rerank response back to one score per document, by each result's ``index``.

    Accepts TEI's bare list of ``{index, score}``, and ``{"results": [...]}`` (Cohere, Jina,
    vLLM, Infinity, ours) or ``{"data": [...]}`` (older Infinity) of ``{index,
    relevance_score}``. Every document must be scored exactly once.
    """
    status = response.status_code
    try:
        data = response.json()
    except ValueError as err:
        msg = (
            f"POST {url} answered {status} with a body that is not JSON: "
            f"{_preview(response.text)}. Is base_url a rerank server?"
        )
        raise RemoteRerankError(msg, status_code=status, body=response.text) from err
    items = data
    if isinstance(data, dict):
        items = data.get("results", data.get("data"))
    if not isinstance(items, list):
        msg = (
            f"POST {url} answered {status} without a list of results (expected the "
            f"{protocol!r} response shape): {_preview(response.text)}."
        )
        raise RemoteRerankError(msg, status_code=status, body=response.text)
    scores: list[float | None] = [None] * count
    for item in items:
        index = item.get("index") if isinstance(item, dict) else None
        value = item.get("relevance_score", item.get("score")) if isinstance(item, dict) else None
        valid_index = isinstance(index, int) and not isinstance(index, bool) and 0 <= index < count
        valid_score = isinstance(value, (int, float)) and not isinstance(value, bool)
        if not (valid_index and valid_score) or scores[index] is not None:  # type: ignore[index]
            msg = (
                f"POST {url} returned a result that does not fit {count} documents: "
                f"{_preview(repr(item))}. Each result needs a unique 'index' in "
                f"[0, {count}) and a numeric 'relevance_score' (or 'score')."
            )
            raise RemoteRerankError(msg, status_code=status, body=response.text)
        scores[index] = float(value)  # type: ignore[index,arg-type]
    missing = [i for i, value in enumerate(scores) if value is None]
    if missing:
        msg = (
            f"POST {url} returned {count - len(missing)} results for {count} documents "
            f"(missing indices {missing[:10]}{'...' if len(missing) > 10 else ''}). The server "
            "must score every document; does it apply a default top_n?"
        )
        raise RemoteRerankError(msg, status_code=status, body=response.text)
    return [value for value in scores if value is not None]


def _retry_after(value: str | None) -> float | None:
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


def _limit_in(text: str) -> int | None:
    for pattern in _LIMIT_PATTERNS:
        match = pattern.search(text)
        if match:
            limit = int(match.group(1))
            return limit if limit >= 1 else None
    return None


def _is_length_error(text: str) -> bool:
    """Whether a 413 is about one text's length (our server's max_document_chars), not count."""
    return "max_document_chars" in text


def _server_message(response: httpx.Response) -> str:
    """The error message in a response body, from the usual places, else the body itself."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict):
        error = data.get("error")
        candidates = [
            data.get("detail"),  # ours, FastAPI, Jina
            error.get("message") if isinstance(error, dict) else error,  # ours, vLLM / TEI
            data.get("message"),  # Cohere, older vLLM
        ]
        for candidate in candidates:
            if isinstance(candidate, str) and candidate:
                return _preview(candidate)
        if isinstance(data.get("detail"), list):  # FastAPI validation errors
            return _preview(repr(data["detail"]))
    return _preview(response.text) if response.text else "(empty body)"


def _sentence(text: str) -> str:
    """``text`` ending with a full stop (servers' messages may or may not have one)."""
    return text if text.endswith((".", "!", "?")) else text + "."


def _preview(text: str, limit: int = _MAX_MESSAGE_CHARS) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _check_base_url(base_url: object) -> str:
    if not isinstance(base_url, str) or not re.match(r"^https?://[^/\s]+", base_url):
        msg = (
            f"base_url must be an http:// or https:// URL of the server root, got "
            f"{base_url!r}. Example: RemoteScorer('http://localhost:8080')."
        )
        raise ValueError(msg)
    return base_url.rstrip("/")


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        msg = f"{name} must be a positive int or None, got {value!r}."
        raise ValueError(msg)
    return value


def _non_negative_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        msg = f"{name} must be an int >= 0, got {value!r}."
        raise ValueError(msg)
    return value


def _positive_number(name: str, value: object) -> float:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value <= 0
    ):
        msg = f"{name} must be a positive number of seconds, got {value!r}."
        raise ValueError(msg)
    return float(value)


def _non_negative_number(name: str, value: object) -> float:
    if (
        not isinstance(value, (int, float))
        or isinstance(value, bool)
        or not math.isfinite(value)
        or value < 0
    ):
        msg = f"{name} must be a number of seconds >= 0, got {value!r}."
        raise ValueError(msg)
    return float(value)
