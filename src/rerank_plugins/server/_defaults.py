"""Defaults shared by the app and the ``serve`` command (no heavy imports here)."""

from __future__ import annotations

import math

__all__ = [
    "API_KEY_ENV",
    "DEFAULT_MAX_DOCUMENTS",
    "DEFAULT_MAX_DOCUMENT_CHARS",
    "DEFAULT_MAX_QUEUE_SECONDS",
    "REQUEST_TIMEOUT_HEADER",
    "default_max_body_bytes",
    "positive_seconds",
]

API_KEY_ENV = "RERANK_PLUGINS_API_KEY"
"""Environment variable read for the API key when none is given."""

DEFAULT_MAX_DOCUMENTS = 1000
"""Documents per request; Cohere recommends at most 1,000 too."""

DEFAULT_MAX_DOCUMENT_CHARS = 20_000
"""Characters per document (and query). A cross-encoder reads at most ``max_length`` tokens
(512 for most), about 2,000 English or 500 Japanese characters, so 20,000 leaves a wide
margin while bounding tokenizer work and memory per request."""

DEFAULT_MAX_QUEUE_SECONDS = 30.0
"""Seconds of waiting work (at the scorer's measured rate) above which new requests get 429.
Below the 60 s that common clients wait (LlamaIndex's TEI client, many proxies), so a
request the server accepts is usually one its client still waits for."""

REQUEST_TIMEOUT_HEADER = "X-Request-Timeout"
"""Request header with the seconds a client waits; the server gives up (503/504) after it."""

_BYTES_PER_CHAR = 4  # the most UTF-8 needs for one character
_BYTES_PER_DOCUMENT = 64  # quotes, commas, a {"text": ...} wrapper
_BODY_SLACK_BYTES = 64 * 1024  # the other fields: model, top_n, vendor extras


def default_max_body_bytes(max_documents: int, max_document_chars: int) -> int:
    r"""The body-size limit that admits any request within the document limits (in UTF-8).

    ``max_documents`` documents and a query of ``max_document_chars`` characters each, at
    4 bytes per character: about 80 MB with the defaults. Bodies that escape every
    non-ASCII character as ``\uXXXX`` (Python's ``json.dumps`` default) take up to 6 bytes
    per character and may need a higher ``max_body_bytes`` at the extreme.
    """
    per_text = max_document_chars * _BYTES_PER_CHAR + _BYTES_PER_DOCUMENT
    return (max_documents + 1) * per_text + _BODY_SLACK_BYTES


def positive_seconds(value: object) -> float | None:
    """``value`` as a positive, finite number of seconds, or ``None`` when it is not one.

    The one check behind ``create_app(request_timeout=..., max_queue_seconds=...)``, the
    ``serve`` options and the ``X-Request-Timeout`` header; each caller words its own
    error. Strings (option and header values) are parsed; ``bool`` is not a number here.
    """
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or value <= 0:
        return None
    return float(value)
