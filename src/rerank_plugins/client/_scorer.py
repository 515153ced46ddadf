"""``RemoteScorer``: the local scorer's interface over a remote rerank service.

This is the wiring: settings, the shared protocol core (``_protocol``), the retry policy
(``_retry``) and the two transports (``_transports``). The only code written twice here is
what must differ between sync and async: sending split requests one after another, or a
few at a time.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rerank_plugins._optional import require
from rerank_plugins._ranker import ContextRanker
from rerank_plugins._results import RankResult, check_inputs, select_top
from rerank_plugins.client._protocol import Protocol, TooManyDocumentsError, adrive, drive
from rerank_plugins.client._settings import RemoteProtocol, Settings

if TYPE_CHECKING:
    from types import TracebackType

    import httpx
    from typing_extensions import Self

    from rerank_plugins.client._transports import AsyncTransport, SyncTransport

__all__ = ["RemoteScorer"]

_MAX_PARALLEL_REQUESTS = 4


class RemoteScorer(ContextRanker):
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
        require("httpx", extra="remote", feature="RemoteScorer")
        require("tenacity", extra="remote", feature="RemoteScorer")
        # Import httpx and tenacity (through these modules) only once both are known present.
        from rerank_plugins.client._retry import RetryPolicy
        from rerank_plugins.client._transports import AsyncTransport, SyncTransport

        settings = Settings.create(
            base_url,
            api_key=api_key,
            protocol=protocol,
            model=model,
            timeout=timeout,
            max_retries=max_retries,
            retry_backoff=retry_backoff,
            retry_read_timeouts=retry_read_timeouts,
            max_documents_per_request=max_documents_per_request,
            headers=headers,
            extra_body=extra_body,
        )
        self._settings = settings
        self._protocol = Protocol(settings)
        policy = RetryPolicy(settings)
        owner = repr(self)
        self._sync: SyncTransport = SyncTransport(settings, policy, owner=owner, client=http_client)
        self._async: AsyncTransport = AsyncTransport(
            settings, policy, owner=owner, client=async_http_client
        )

    # The settings are fixed at construction (both transports and the retry policy hold them),
    # so they are read-only: assigning one raises instead of being silently ignored.
    @property
    def base_url(self) -> str:
        """The server's URL as given, without a trailing slash."""
        return self._settings.base_url

    @property
    def protocol(self) -> RemoteProtocol:
        """The wire dialect requested (``"auto"`` probes the server on first use)."""
        return self._settings.protocol

    @property
    def model(self) -> str:
        """The model name sent to the server (``base_url`` when none was given)."""
        return self._settings.model if self._settings.model is not None else self.base_url

    @property
    def timeout(self) -> float:
        """Seconds to wait for one HTTP attempt."""
        return self._settings.timeout

    @property
    def max_retries(self) -> int:
        """Retries after the first attempt, for the errors the retry policy covers."""
        return self._settings.max_retries

    @property
    def retry_backoff(self) -> float:
        """Base of the exponential backoff between retries, in seconds."""
        return self._settings.retry_backoff

    @property
    def retry_read_timeouts(self) -> bool:
        """Whether read timeouts and 504 are retried too."""
        return self._settings.retry_read_timeouts

    @property
    def max_documents_per_request(self) -> int | None:
        """The most documents sent in one request (``None``: as many as the server takes)."""
        return self._settings.max_documents_per_request

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

    def close(self) -> None:
        """Close the sync HTTP client this scorer created; later calls raise ``RuntimeError``.

        In async code, use :meth:`aclose`, which closes the async client too.
        """
        self._async.forget()
        self._sync.close()

    async def aclose(self) -> None:
        """Close the HTTP clients this scorer created; later calls raise ``RuntimeError``."""
        self._sync.close()
        await self._async.aclose()

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

    # --- the two drivers: the same plan, sent in sequence or a few at a time ------------------

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

    def _score_range(
        self, query: str, passages: list[str], start: int, stop: int, out: list[float]
    ) -> None:
        chunks = self._protocol.split(start, stop)
        if chunks is not None:
            for chunk_start, chunk_stop in chunks:
                self._score_range(query, passages, chunk_start, chunk_stop, out)
            return
        exchange = self._protocol.exchange(query, passages[start:stop])
        try:
            out[start:stop] = drive(exchange, self._sync.send)
        except TooManyDocumentsError as refused:
            self._protocol.learn_limit(refused, stop - start)
            self._score_range(query, passages, start, stop, out)

    async def _ascore_range(
        self, query: str, passages: list[str], start: int, stop: int, out: list[float]
    ) -> None:
        chunks = self._protocol.split(start, stop)
        if chunks is not None:
            if self._protocol.detecting:  # detect the API with one request, not several at once
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
        exchange = self._protocol.exchange(query, passages[start:stop])
        try:
            out[start:stop] = await adrive(exchange, self._async.send)
        except TooManyDocumentsError as refused:
            self._protocol.learn_limit(refused, stop - start)
            await self._ascore_range(query, passages, start, stop, out)
