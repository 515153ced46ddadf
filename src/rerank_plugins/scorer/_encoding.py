"""Turn a query and its passages into token rows: one per pair, or one per passage window.

The worker's tokenizer and the token-counting copy both go through :class:`PairEncoder`,
so counted tokens are the tokens scored. Only the passage is truncated; with
``long_passages="window"`` a long passage becomes overlapping sentence-aligned windows
(see :mod:`~rerank_plugins.scorer._windows`) and scores as its best window.
"""

from __future__ import annotations

import copy
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rerank_plugins.scorer._windows import pair_builder, passage_windows

logger = logging.getLogger(__name__)

# Per passage: its score, and the character span of its best window (None: the whole text).
ScoredSpans = tuple[list[float], list[tuple[int, int] | None]]


@dataclass(frozen=True, slots=True)
class Encoded:
    """One job's tokenized rows; ``owners[row]`` is the passage a row (window) belongs to."""

    ids: list[list[int]]
    types: list[list[int]] | None
    owners: list[int]
    spans: list[tuple[int, int] | None]

    def best(self, scores: Sequence[float], passages: int) -> ScoredSpans:
        """Each passage's best row score, and that row's character span (None if whole)."""
        best = [float("-inf")] * passages
        spans: list[tuple[int, int] | None] = [None] * passages
        for owner, span, value in zip(self.owners, self.spans, scores, strict=True):
            if value > best[owner]:
                best[owner], spans[owner] = value, span
        return best, spans


class PairEncoder:
    """Encodes pairs for one model: its ``max_length``, special tokens and window settings.

    Holds no tokenizer of its own: the caller passes the one its thread owns (a fast
    tokenizer used from two threads at once fails with "Already borrowed").
    """

    def __init__(
        self,
        tokenizer: Any,
        *,
        max_length: int,
        long_passages: str,
        window_size: int | None,
        window_stride: int | None,
        uses_token_types: bool,
    ) -> None:
        self.max_length = max_length
        self.long_passages = long_passages
        self.window_size = window_size
        self.window_stride = window_stride
        self.uses_token_types = uses_token_types
        self._pair_specials = tokenizer.num_special_tokens_to_add(pair=True)
        self._build_pair = pair_builder(tokenizer)

    def encode(self, tokenizer: Any, query: str, passages: Sequence[str]) -> Encoded:
        """Tokenize pairs (or windows of long passages), truncating only the passage.

        The whole query is kept unless it alone leaves no room for the passage.
        """
        query_ids = tokenizer(query, add_special_tokens=False)["input_ids"]
        room = self.max_length - len(query_ids) - self._pair_specials
        truncation = "only_second"
        if room < 1:
            logger.warning(
                "The query is %d tokens, too long for max_length=%d; truncating query and passage.",
                len(query_ids),
                self.max_length,
            )
            truncation = "longest_first"
        elif self.long_passages == "window":
            return self._windows(tokenizer, query_ids, passages, room)
        encoded = tokenizer(
            [query] * len(passages),
            list(passages),
            truncation=truncation,
            max_length=self.max_length,
            return_attention_mask=False,
            return_token_type_ids=self.uses_token_types,
        )
        types = encoded["token_type_ids"] if self.uses_token_types else None
        spans: list[tuple[int, int] | None] = [None] * len(passages)
        return Encoded(encoded["input_ids"], types, list(range(len(passages))), spans)

    def _windows(
        self, tokenizer: Any, query_ids: list[int], passages: Sequence[str], room: int
    ) -> Encoded:
        """Rows for sentence-aligned windows of each passage's own tokens, beside the query.

        Each row is the query and a slice of the passage's token ids joined by the
        tokenizer's special tokens, at most ``max_length`` tokens, and its span is
        exactly the characters those tokens come from.
        """
        size = min(self.window_size or room, room)
        stride = min(self.window_stride or max(size // 2, 1), size)
        ids: list[list[int]] = []
        types: list[list[int]] = []
        owners: list[int] = []
        spans: list[tuple[int, int] | None] = []
        windowed = passage_windows(tokenizer, passages, size=size, stride=stride)
        for index, (passage_ids, windows) in enumerate(windowed):
            for window in windows:
                row, row_types = self._build_pair(
                    query_ids, passage_ids[window.first : window.last]
                )
                ids.append(row)
                types.append(row_types)
                owners.append(index)
                spans.append((window.start, window.end))
        return Encoded(ids, types if self.uses_token_types else None, owners, spans)


class TokenCounter:
    """Counts tokens for callers on any thread, with its own copy of the tokenizer.

    The worker owns the scorer's tokenizer, and a fast tokenizer used from two threads at
    once fails with "Already borrowed"; callers share this copy under :attr:`lock`.
    """

    def __init__(self, tokenizer: Any, encoder: PairEncoder) -> None:
        self._tokenizer = copy.deepcopy(tokenizer)
        self._encoder = encoder
        self.lock = threading.Lock()

    def reset_after_fork(self) -> None:
        """Give a forked child a fresh lock.

        A lock held by another thread at ``fork()`` would stay held in the child, where that
        thread does not exist, and counting would wait forever.
        """
        self.lock = threading.Lock()

    def count_text(self, text: str) -> int:
        """Tokens of ``text`` alone (no special tokens, no truncation)."""
        if not isinstance(text, str):
            msg = f"text must be a str, got {type(text).__name__}."
            raise TypeError(msg)
        with self.lock:
            encoded = self._tokenizer(text, add_special_tokens=False, verbose=False)
        return len(encoded["input_ids"])

    def count_pairs(self, query: str, passages: Sequence[str]) -> int:
        """Tokens the model reads for these pairs (or windows), after truncation."""
        if not passages:
            return 0
        with self.lock:
            encoded = self._encoder.encode(self._tokenizer, query, passages)
        return sum(len(row) for row in encoded.ids)


def check_window_options(
    long_passages: str, window_size: int | None, window_stride: int | None
) -> tuple[str, int | None, int | None]:
    """Check ``long_passages``, ``window_size`` and ``window_stride``; return them."""
    if long_passages not in ("truncate", "window"):
        msg = f"long_passages must be 'truncate' or 'window', got {long_passages!r}."
        raise ValueError(msg)
    for name, value in (("window_size", window_size), ("window_stride", window_stride)):
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 1
        ):
            msg = f"{name} must be a positive int, got {value!r}."
            raise ValueError(msg)
    return long_passages, window_size, window_stride
