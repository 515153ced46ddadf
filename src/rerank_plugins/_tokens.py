"""Counting a document's tokens for a context budget (``max_context_tokens``).

A counter is a ``Callable[[str], int]``, LangChain's ``length_function`` convention. A string
names one: a tiktoken encoding (:data:`TIKTOKEN_ENCODINGS`, with the ``tokens`` extra) or
else a Hugging Face tokenizer (hub id or local directory, loaded with ``AutoTokenizer``).
Counts are of the text alone: no special tokens, no truncation.

tiktoken downloads an encoding's BPE file from the network the first time it is used and
caches it (``TIKTOKEN_CACHE_DIR``, default a ``data-gym-cache`` folder in the temporary
directory); offline, point ``TIKTOKEN_CACHE_DIR`` at a folder that already holds it.
LlamaIndex ships ``cl100k_base`` in ``llama_index/core/_static/tiktoken_cache`` for its
``Settings.tokenizer``, which is why the LlamaIndex adapter's default works offline.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from typing import Any

from rerank_plugins._optional import require

LengthFunction = Callable[[str], int]

TIKTOKEN_ENCODINGS = frozenset(
    {"gpt2", "r50k_base", "p50k_base", "p50k_edit", "cl100k_base", "o200k_base", "o200k_harmony"}
)
"""Names read as tiktoken encodings; any other string is a Hugging Face tokenizer."""


def length_function(spec: LengthFunction | str, *, name: str = "length_function") -> LengthFunction:
    """Return the counter ``spec`` stands for (a callable is returned as is).

    Raises:
        TypeError: ``spec`` is neither a callable nor a non-empty string.
        MissingDependencyError: ``spec`` is a tiktoken encoding and tiktoken is not installed.
        ValueError: ``spec`` names no loadable Hugging Face tokenizer.
    """
    if callable(spec):
        return spec
    if not isinstance(spec, str) or not spec.strip():
        msg = (
            f"{name} must be a callable (str -> int), a tiktoken encoding name or a Hugging "
            f"Face tokenizer name or path, got {spec!r}."
        )
        raise TypeError(msg)
    if spec in TIKTOKEN_ENCODINGS:
        return _tiktoken_counter(spec)
    return _hf_counter(spec, name)


@functools.lru_cache(maxsize=8)
def _tiktoken_counter(encoding: str) -> LengthFunction:
    tiktoken = require("tiktoken", extra="tokens", feature="Counting tokens with tiktoken")
    try:
        codec = tiktoken.get_encoding(encoding)
    except Exception as err:
        msg = (
            f"tiktoken could not load {encoding!r}. It downloads the encoding's BPE file on "
            f"first use; offline, set TIKTOKEN_CACHE_DIR to a folder that holds it. ({err})"
        )
        raise RuntimeError(msg) from err

    def count(text: str) -> int:
        # Special-token text in a document is ordinary text to the LLM's prompt.
        return len(codec.encode(text, disallowed_special=()))

    return count


@functools.lru_cache(maxsize=8)
def _hf_counter(path: str, name: str) -> LengthFunction:
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path)
    except (OSError, ValueError) as err:
        encodings = ", ".join(sorted(TIKTOKEN_ENCODINGS))
        msg = (
            f"{name}={path!r} is neither a tiktoken encoding ({encodings}) nor a Hugging Face "
            f"tokenizer that could be loaded: {err}"
        )
        raise ValueError(msg) from err
    return _HFCounter(tokenizer)


class _HFCounter:
    """Counts with a Hugging Face tokenizer; a lock, since fast tokenizers are not reentrant."""

    def __init__(self, tokenizer: Any) -> None:
        self._tokenizer = tokenizer
        self._lock = threading.Lock()

    def __call__(self, text: str) -> int:
        with self._lock:
            ids = self._tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
        return len(ids)
