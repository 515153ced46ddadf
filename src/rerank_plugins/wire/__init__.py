"""The rerank wire formats ("dialects"), one module each, shared by the server and the client.

Each dialect module owns its request and response models, its path and the conversions to
and from the scorer's :class:`~rerank_plugins.RankResult`, and exposes them as one
:class:`Dialect` named ``DIALECT``:

==============  ==========  ===============================================================
module          name        path (client)
==============  ==========  ===============================================================
``cohere_v1``   cohere-v1   ``/v1/rerank`` of the server root
``cohere_v2``   cohere      ``/v2/rerank`` of the server root
``jina``        jina        ``/v1/rerank`` of the server root (``return_documents=false``)
``vllm``        vllm        ``/v1/rerank`` of the server root
``tei``         tei         ``base_url + /rerank`` (``texts``, bare list answer)
``infinity``    infinity    ``base_url + /rerank`` (``document`` is a string)
==============  ==========  ===============================================================

Adding a dialect means one module with a ``DIALECT`` and one :func:`register` line below;
the server's routes (``rerank_plugins.server._routes``) say which path serves which body.
Needs pydantic (a dependency of langchain-core, so always installed).
"""

from __future__ import annotations

from typing import Any

from rerank_plugins.wire import cohere_v1, cohere_v2, infinity, jina, tei, vllm
from rerank_plugins.wire._dialect import (
    Dialect,
    Inputs,
    Reply,
    ResponseShapeError,
    UnsupportedFieldError,
)

__all__ = [
    "Dialect",
    "Inputs",
    "Reply",
    "ResponseShapeError",
    "UnsupportedFieldError",
    "dialect_names",
    "get_dialect",
    "register",
]

_DIALECTS: dict[str, Dialect[Any]] = {}


def register(dialect: Dialect[Any]) -> Dialect[Any]:
    """Make ``dialect`` available by its name; returns it.

    Raises:
        ValueError: Another dialect already has that name.
    """
    if dialect.name in _DIALECTS:
        msg = (
            f"A dialect named {dialect.name!r} is already registered. Give the new one "
            "another name."
        )
        raise ValueError(msg)
    _DIALECTS[dialect.name] = dialect
    return dialect


def get_dialect(name: str) -> Dialect[Any]:
    """The dialect registered as ``name`` (e.g. ``"tei"``).

    Raises:
        ValueError: No dialect has that name.
    """
    try:
        return _DIALECTS[name]
    except KeyError:
        msg = f"Unknown rerank dialect {name!r}. Use one of: {', '.join(dialect_names())}."
        raise ValueError(msg) from None


def dialect_names() -> tuple[str, ...]:
    """The registered dialects' names, in registration order."""
    return tuple(_DIALECTS)


register(cohere_v1.DIALECT)
register(cohere_v2.DIALECT)
register(jina.DIALECT)
register(vllm.DIALECT)
register(tei.DIALECT)
register(infinity.DIALECT)
