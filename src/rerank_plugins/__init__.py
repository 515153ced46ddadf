"""rerank-plugins: a local cross-encoder reranker for LangChain and LlamaIndex.

Importing the package is cheap: torch, transformers and the frameworks load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from rerank_plugins._results import RankResult
from rerank_plugins._version import __version__
from rerank_plugins.errors import (
    MissingDependencyError,
    ModelLoadError,
    OverloadedError,
    RemoteRerankError,
    RerankPluginsError,
)

if TYPE_CHECKING:
    from rerank_plugins._text import bm25_tokenize, split_sentences
    from rerank_plugins.client import RemoteScorer
    from rerank_plugins.scorer import CrossEncoderScorer, clear_scorers, get_scorer

__all__ = [
    "CrossEncoderScorer",
    "MissingDependencyError",
    "ModelLoadError",
    "OverloadedError",
    "RankResult",
    "RemoteRerankError",
    "RemoteScorer",
    "RerankPluginsError",
    "__version__",
    "bm25_tokenize",
    "clear_scorers",
    "get_scorer",
    "split_sentences",
]

_LAZY = {
    "bm25_tokenize": "rerank_plugins._text",
    "split_sentences": "rerank_plugins._text",
    "CrossEncoderScorer": "rerank_plugins.scorer",
    "RemoteScorer": "rerank_plugins.client",
    "clear_scorers": "rerank_plugins.scorer",
    "get_scorer": "rerank_plugins.scorer",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    msg = f"module 'rerank_plugins' has no attribute {name!r}"
    raise AttributeError(msg)


def __dir__() -> list[str]:
    return sorted(__all__)
