"""Jina AI's rerank format (``POST https://api.jina.ai/v1/rerank``).

The request is Cohere v1's (:class:`~rerank_plugins.wire.cohere_v1.RerankRequest`), which
our server parses and answers at ``/v1/rerank``. Jina's own response has ``model``,
``usage`` and ``results`` (no ``id`` or ``meta``): :class:`JinaResponse`. The client's
``jina`` protocol sends ``return_documents=false`` (Jina's default is true) so that
answers stay small; Jina's API needs ``model``.
"""

from __future__ import annotations

from rerank_plugins.wire import cohere_v1
from rerank_plugins.wire._common import ServiceModel, ServiceResult
from rerank_plugins.wire._dialect import Dialect
from rerank_plugins.wire.cohere_v1 import RerankRequest

__all__ = ["DIALECT", "JinaResponse", "JinaUsage"]


class JinaUsage(ServiceModel):
    """Jina's ``usage``: ``total_tokens`` (and ``prompt_tokens`` on some deployments)."""

    total_tokens: int


class JinaResponse(ServiceModel):
    """Jina's rerank response, best result first."""

    model: str | None = None
    usage: JinaUsage | None = None
    results: list[ServiceResult]


DIALECT: Dialect[RerankRequest] = Dialect(
    name="jina",
    path="/v1/rerank",
    from_root=True,
    request_model=RerankRequest,
    response_model=JinaResponse,
    inputs=cohere_v1.inputs,
    reply=cohere_v1.reply,
    extra=(("return_documents", False),),
)
"""Jina: Cohere v1's body with ``return_documents=false``, at ``/v1/rerank``."""
