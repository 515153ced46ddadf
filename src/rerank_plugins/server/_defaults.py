"""Defaults shared by the app and the ``serve`` command (no heavy imports here)."""

from __future__ import annotations

__all__ = ["API_KEY_ENV", "DEFAULT_MAX_DOCUMENTS", "DEFAULT_MAX_DOCUMENT_CHARS"]

API_KEY_ENV = "RERANK_PLUGINS_API_KEY"
"""Environment variable read for the API key when none is given."""

DEFAULT_MAX_DOCUMENTS = 1000
"""Documents per request; Cohere recommends at most 1,000 too."""

DEFAULT_MAX_DOCUMENT_CHARS = 20_000
"""Characters per document (and query). A cross-encoder reads at most ``max_length`` tokens
(512 for most), about 2,000 English or 500 Japanese characters, so 20,000 leaves a wide
margin while bounding tokenizer work and memory per request."""
