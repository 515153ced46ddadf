"""The two thin transports: an ``httpx.Client`` or an ``httpx.AsyncClient``, with retries.

Each sends one :class:`~rerank_plugins.client._protocol.Request` and returns the answer to
act on. What to retry, how long to wait, and the errors come from the shared
:class:`~rerank_plugins.client._retry.RetryPolicy`; the loop is tenacity's ``Retrying`` or
``AsyncRetrying``. What is left here is only what differs: the client object, its
lifecycle, and ``await``. Imported once ``httpx`` and ``tenacity`` are known to be there.
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from typing import TYPE_CHECKING

import httpx
import tenacity

if TYPE_CHECKING:
    from rerank_plugins.client._protocol import Request
    from rerank_plugins.client._retry import Outcome, RetryPolicy
    from rerank_plugins.client._settings import Settings

__all__ = ["AsyncTransport", "SyncTransport"]


class _Transport:
    """What both transports share: settings, retry policy, and the closed state."""

    def __init__(
        self,
        settings: Settings,
        policy: RetryPolicy,
        *,
        owner: str,
    ) -> None:
        self._settings = settings
        self._policy = policy
        self._owner = owner
        """The scorer's repr, for the "is closed" error."""
        self._lock = threading.Lock()
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            msg = f"{self._owner} is closed; create a new RemoteScorer to send more requests."
            raise RuntimeError(msg)


class SyncTransport(_Transport):
    """Sends with an ``httpx.Client``: the caller's, or one made on first use."""

    def __init__(
        self,
        settings: Settings,
        policy: RetryPolicy,
        *,
        owner: str,
        client: httpx.Client | None,
    ) -> None:
        super().__init__(settings, policy, owner=owner)
        self._user_client = client
        self._client: httpx.Client | None = None

    def send(self, request: Request) -> httpx.Response:
        """POST ``request``, retrying as the policy says; the answer, or ``RemoteRerankError``."""
        client = self._get_client()
        retrying = tenacity.Retrying(**self._policy.options(request.url))
        outcome: Outcome = retrying(self._attempt, client, request)
        return self._policy.settle(request.url, outcome, retrying.statistics["attempt_number"])

    def _attempt(self, client: httpx.Client, request: Request) -> Outcome:
        settings = self._settings
        try:
            return client.post(
                request.url, json=request.body, headers=settings.headers, timeout=settings.timeout
            )
        except httpx.HTTPError as err:
            return err

    def _get_client(self) -> httpx.Client:
        if self._user_client is not None:
            self._check_open()
            return self._user_client
        with self._lock:
            self._check_open()
            if self._client is None:
                self._client = httpx.Client(timeout=self._settings.timeout)
            return self._client

    def close(self) -> None:
        """Close the client made here (not the caller's); later sends raise ``RuntimeError``."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        if client is not None:
            client.close()


class AsyncTransport(_Transport):
    """Sends with an ``httpx.AsyncClient``: the caller's, or one made per event loop."""

    def __init__(
        self,
        settings: Settings,
        policy: RetryPolicy,
        *,
        owner: str,
        client: httpx.AsyncClient | None,
    ) -> None:
        super().__init__(settings, policy, owner=owner)
        self._user_client = client
        self._client: httpx.AsyncClient | None = None
        self._loop: weakref.ref[asyncio.AbstractEventLoop] | None = None

    async def send(self, request: Request) -> httpx.Response:
        """Async :meth:`SyncTransport.send`."""
        client = self._get_client()
        retrying = tenacity.AsyncRetrying(**self._policy.options(request.url))
        outcome: Outcome = await retrying(self._attempt, client, request)
        return self._policy.settle(request.url, outcome, retrying.statistics["attempt_number"])

    async def _attempt(self, client: httpx.AsyncClient, request: Request) -> Outcome:
        settings = self._settings
        try:
            return await client.post(
                request.url, json=request.body, headers=settings.headers, timeout=settings.timeout
            )
        except httpx.HTTPError as err:
            return err

    def _get_client(self) -> httpx.AsyncClient:
        if self._user_client is not None:
            self._check_open()
            return self._user_client
        loop = asyncio.get_running_loop()
        with self._lock:
            self._check_open()
            # httpx connections belong to the event loop that opened them: a scorer used from
            # several loops (e.g. one asyncio.run() per call) gets a client per loop.
            current = self._loop() if self._loop is not None else None
            if self._client is None or current is not loop:
                self._client = httpx.AsyncClient(timeout=self._settings.timeout)
                self._loop = weakref.ref(loop)
            return self._client

    def forget(self) -> None:
        """Refuse later sends and drop the client unclosed (sync code cannot close it)."""
        with self._lock:
            self._closed = True
            self._client = None

    async def aclose(self) -> None:
        """Close the client made here (not the caller's); later sends raise ``RuntimeError``."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
            loop = self._loop() if self._loop is not None else None
        # A client made in another (maybe closed) event loop cannot be closed from this one.
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()
