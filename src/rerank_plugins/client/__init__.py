"""A scorer that reranks through a remote service: our server, TEI, vLLM, Infinity, Jina, Cohere.

:class:`RemoteScorer` has the same interface as the local scorer (``model``, ``score``,
``ascore``, ``rank``, ``arank``), so both adapters take it::

    from rerank_plugins import RemoteScorer
    from rerank_plugins.langchain import CrossEncoderRerank

    reranker = CrossEncoderRerank(scorer=RemoteScorer("http://rerank:8080"), top_n=5)

Each ``protocol`` is a dialect of :mod:`rerank_plugins.wire`, which owns its path and its
request and response shapes (the same modules our server is built from):

=============  ======================  ====================================================
protocol       endpoint                request body
=============  ======================  ====================================================
``cohere``     ``POST /v2/rerank``     ``wire.cohere_v2``: ``model, query, documents``
``jina``       ``POST /v1/rerank``     ``wire.jina``: the Cohere v1 shape,
                                       ``return_documents=false``
``vllm``       ``POST /v1/rerank``     ``wire.vllm``: the Cohere v1 shape
``infinity``   ``POST /rerank``        ``wire.infinity``: ``return_documents=false,
                                       raw_scores=false``
``tei``        ``POST /rerank``        ``wire.tei``: ``query, texts, truncate=true, ...``
=============  ======================  ====================================================

Every response is mapped back by its ``index`` field, never by position. ``model`` is sent
only when given. ``top_n`` is never sent: every document is scored, and ``top_n`` and
``score_threshold`` are applied here, so that split requests merge exactly.

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

Layout: the protocol logic is written once, without I/O (``_protocol``: which dialect,
probing, reading results, "split" or "fail"; ``_retry``: "retry" and how long to wait;
``_messages``: the errors), and driven by two thin transports (``_transports``: an
``httpx.Client`` or an ``httpx.AsyncClient`` under tenacity's retry loop), as in
httpx-based SDKs. ``_scorer`` wires them into :class:`RemoteScorer`.
"""

from __future__ import annotations

from rerank_plugins.client._scorer import RemoteScorer
from rerank_plugins.client._settings import RemoteProtocol

__all__ = ["RemoteProtocol", "RemoteScorer"]
