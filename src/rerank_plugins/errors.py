"""Errors raised by rerank-plugins.

Hierarchy::

    RerankPluginsError
    ├── MissingDependencyError (also an ImportError)
    ├── ModelLoadError
    ├── OverloadedError
    └── RemoteRerankError (carries .status_code and .body)

Bad arguments raise the built-in ``ValueError`` or ``TypeError`` instead.
"""

from __future__ import annotations

__all__ = [
    "MissingDependencyError",
    "ModelLoadError",
    "OverloadedError",
    "RemoteRerankError",
    "RerankPluginsError",
]


class RerankPluginsError(Exception):
    """Base class of every error this library raises on purpose."""


class MissingDependencyError(RerankPluginsError, ImportError):
    """An optional dependency needed by the requested feature is not installed."""


class ModelLoadError(RerankPluginsError):
    """A model could not be loaded, or it is not a sequence-classification cross-encoder."""


class OverloadedError(RerankPluginsError):
    """The scorer's queue is full; retry later (HTTP 429).

    ``retry_after`` estimates, in seconds, when the work now waiting will have been scored
    (waiting pairs over the measured rate); None when no rate has been measured yet.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RemoteRerankError(RerankPluginsError):
    """A remote reranking service answered with an error."""

    def __init__(self, message: str, *, status_code: int | None = None, body: str = "") -> None:
        super().__init__(message)
        self.status_code = status_code
        self.body = body
