"""vLLM's rerank format (``POST /v1/rerank``; also ``/rerank`` and ``/v2/rerank``).

vLLM takes Cohere v1's request (:class:`~rerank_plugins.wire.cohere_v1.RerankRequest`:
``model``, ``query``, ``documents``, ``top_n``) and answers :class:`VLLMResponse`: ``id``,
``model``, ``usage`` and ``results`` whose ``document`` is always there. The client's
``vllm`` protocol sends no extras (vLLM logs a warning for fields it does not know); our
server parses and answers this body at ``/v1/rerank``.
"""

from __future__ import annotations

from rerank_plugins.wire import cohere_v1
from rerank_plugins.wire._common import ServiceModel, ServiceResult
from rerank_plugins.wire._dialect import Dialect
from rerank_plugins.wire.cohere_v1 import RerankRequest

__all__ = ["DIALECT", "VLLMResponse", "VLLMUsage"]


class VLLMUsage(ServiceModel):
    """vLLM's ``usage``."""

    total_tokens: int
    prompt_tokens: int | None = None


class VLLMResponse(ServiceModel):
    """vLLM's rerank response, best result first."""

    id: str | None = None
    model: str | None = None
    usage: VLLMUsage | None = None
    results: list[ServiceResult]


DIALECT: Dialect[RerankRequest] = Dialect(
    name="vllm",
    path="/v1/rerank",
    from_root=True,
    request_model=RerankRequest,
    response_model=VLLMResponse,
    inputs=cohere_v1.inputs,
    reply=cohere_v1.reply,
)
"""vLLM: Cohere v1's body at ``/v1/rerank`` of the server root."""
