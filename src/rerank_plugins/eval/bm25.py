"""An in-memory Okapi BM25 index, the first stage of :func:`rerank_plugins.eval.evaluate`.

The scoring formula is Lucene's (Anserini/Pyserini), with Pyserini's defaults
``k1 = 0.9`` and ``b = 0.4``::

    score(q, d) = sum over query terms t of
                  idf(t) * tf(t, d) / (tf(t, d) + k1 * (1 - b + b * len(d) / avg_len))
    idf(t)      = ln(1 + (N - df(t) + 0.5) / (df(t) + 0.5))

A term repeated in the query counts once per occurrence, as in a Lucene ``BooleanQuery``.
Unlike Lucene, document lengths are exact (Lucene rounds them to one byte), so scores
are close to Pyserini's but not identical. Postings are numpy arrays, so a search costs
one vectorised update per query term: a few milliseconds over tens of thousands of
passages.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np

from rerank_plugins._text import TokenizerName, get_tokenizer, resolve_tokenizer

if TYPE_CHECKING:
    from numpy.typing import NDArray

__all__ = ["BM25Index"]


class BM25Index:
    """An Okapi BM25 index over a fixed list of texts.

    Args:
        texts: The documents; a search returns their positions in this list.
        k1: Term-frequency saturation (``>= 0``).
        b: Length normalisation, from 0 (none) to 1 (full).
        tokenizer: A strategy name for :func:`rerank_plugins._text.bm25_tokenize`
            (``"auto"``, ``"fugashi"``, ``"bigram"``, ``"whitespace"``) or any function
            from a text to its terms. Documents and queries go through the same one.

    Raises:
        ValueError: ``k1`` or ``b`` is out of range, or ``tokenizer`` is unknown.
        TypeError: A text is not a ``str``.
        MissingDependencyError: ``tokenizer="fugashi"`` and fugashi is not installed.

    Example:
        >>> index = BM25Index(["the cat sat", "a dog barked"], tokenizer="whitespace")
        >>> index.search("cat", top_k=5)[0][0]
        0
    """

    def __init__(
        self,
        texts: Sequence[str],
        *,
        k1: float = 0.9,
        b: float = 0.4,
        tokenizer: TokenizerName | Callable[[str], list[str]] = "auto",
    ) -> None:
        if not k1 >= 0:
            msg = f"k1 must be a number >= 0, got {k1!r}."
            raise ValueError(msg)
        if not 0 <= b <= 1:
            msg = f"b must be a number between 0 and 1, got {b!r}."
            raise ValueError(msg)
        if callable(tokenizer):
            self.tokenizer_name = getattr(tokenizer, "__name__", type(tokenizer).__name__)
            self._tokenize = tokenizer
        else:
            self.tokenizer_name = resolve_tokenizer(tokenizer)
            self._tokenize = get_tokenizer(tokenizer)
        self.k1 = float(k1)
        self.b = float(b)
        self._size = len(texts)

        postings: dict[str, tuple[list[int], list[int]]] = {}
        lengths = np.zeros(self._size, dtype=np.float64)
        for position, text in enumerate(texts):
            if not isinstance(text, str):
                msg = f"texts[{position}] must be a str, got {type(text).__name__}."
                raise TypeError(msg)
            counts = Counter(self._tokenize(text))
            lengths[position] = sum(counts.values())
            for term, count in counts.items():
                docs, freqs = postings.setdefault(term, ([], []))
                docs.append(position)
                freqs.append(count)

        average = float(lengths.mean()) if self._size and lengths.any() else 1.0
        norms = self.k1 * (1.0 - self.b + self.b * lengths / average)
        # Each posting holds the document positions and their precomputed term weights.
        self._postings: dict[str, tuple[NDArray[np.int64], NDArray[np.float64]]] = {}
        for term, (docs, freqs) in postings.items():
            doc_array = np.asarray(docs, dtype=np.int64)
            tf = np.asarray(freqs, dtype=np.float64)
            idf = np.log1p((self._size - len(docs) + 0.5) / (len(docs) + 0.5))
            self._postings[term] = (doc_array, idf * tf / (tf + norms[doc_array]))

    def __len__(self) -> int:
        return self._size

    def __repr__(self) -> str:
        return (
            f"BM25Index({self._size} documents, {len(self._postings)} terms, "
            f"k1={self.k1}, b={self.b}, tokenizer={self.tokenizer_name!r})"
        )

    def search(self, query: str, top_k: int = 100) -> list[tuple[int, float]]:
        """Return up to ``top_k`` ``(position, score)`` pairs, best first.

        Only documents sharing a term with the query are returned, so there may be fewer
        than ``top_k``. Equal scores keep the lower position first.

        Raises:
            TypeError: ``query`` is not a ``str``.
            ValueError: ``top_k`` is not a positive int.
        """
        if not isinstance(query, str):
            msg = f"query must be a str, got {type(query).__name__}."
            raise TypeError(msg)
        if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1:
            msg = f"top_k must be a positive int, got {top_k!r}."
            raise ValueError(msg)
        scores = np.zeros(self._size, dtype=np.float64)
        matched = False
        for term in self._tokenize(query):
            posting = self._postings.get(term)
            if posting is not None:
                scores[posting[0]] += posting[1]
                matched = True
        if not matched:
            return []
        hits = np.flatnonzero(scores > 0)
        if len(hits) > top_k:
            # Keep every document tied with the k-th score, then sort those few.
            threshold = np.partition(scores[hits], len(hits) - top_k)[len(hits) - top_k]
            hits = hits[scores[hits] >= threshold]
        order = np.lexsort((hits, -scores[hits]))[:top_k]
        return [(int(hits[i]), float(scores[hits[i]])) for i in order]
