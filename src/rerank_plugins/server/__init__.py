"""The HTTP server: Cohere, Jina, vLLM and TEI compatible rerank endpoints on one scorer.

Needs the ``server`` extra (``pip install "rerank-plugins[server]"``). Importing this package
is cheap: FastAPI is imported when :func:`create_app` is first looked up, so that
``rerank-plugins --help`` works without the extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rerank_plugins.server.app import create_app

__all__ = ["create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from rerank_plugins.server.app import create_app

        return create_app
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
