"""The in-memory BM25 index used as the evaluation's first stage."""

from __future__ import annotations

import math
from collections import Counter

import pytest

from rerank_plugins._text import bm25_tokenize
from rerank_plugins.eval.bm25 import BM25Index

EN_DOCS = [
    "The cat sat on the mat.",
    "Dogs are loyal animals and love long walks.",
    "A recipe for tomato soup with basil.",
    "The stock market fell sharply on Monday.",
    "Cats and dogs can live together peacefully.",
]

JA_DOCS = [
    "東京は日本の首都であり、人口が最も多い都市である。",
    "富士山は日本で最も高い山で、標高は3776メートルである。",
    "京都には多くの寺院や神社があり、観光客に人気がある。",
    "寿司は酢飯と魚介類を組み合わせた日本料理である。",
]


def _reference_scores(docs, query, k1, b, tokenize):
    """BM25 written out term by term, to check the vectorised index against."""
    tokenized = [Counter(tokenize(doc)) for doc in docs]
    lengths = [sum(counts.values()) for counts in tokenized]
    average = sum(lengths) / len(lengths)
    scores = [0.0] * len(docs)
    for term in tokenize(query):
        df = sum(term in counts for counts in tokenized)
        if not df:
            continue
        idf = math.log(1 + (len(docs) - df + 0.5) / (df + 0.5))
        for i, counts in enumerate(tokenized):
            tf = counts[term]
            if tf:
                scores[i] += idf * tf / (tf + k1 * (1 - b + b * lengths[i] / average))
    return scores


@pytest.mark.parametrize(("k1", "b"), [(0.9, 0.4), (1.5, 0.75), (0.0, 0.0), (1.2, 1.0)])
def test_scores_match_the_formula(k1, b):
    index = BM25Index(EN_DOCS, k1=k1, b=b, tokenizer="whitespace")
    tokenize = lambda text: bm25_tokenize(text, tokenizer="whitespace")  # noqa: E731
    for query in ("cat dogs", "the the market", "walks soup basil"):
        expected = _reference_scores(EN_DOCS, query, k1, b, tokenize)
        hits = index.search(query, top_k=len(EN_DOCS))
        assert {position: pytest.approx(score) for position, score in hits} == {
            i: pytest.approx(score) for i, score in enumerate(expected) if score > 0
        }
        assert [score for _, score in hits] == sorted((s for _, s in hits), reverse=True)


def test_relevant_document_ranks_first():
    index = BM25Index(EN_DOCS, tokenizer="whitespace")
    assert index.search("tomato soup recipe", top_k=3)[0][0] == 2
    assert index.search("stock market", top_k=3)[0][0] == 3


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("日本の首都はどこですか", 0),
        ("日本で一番高い山の標高は", 1),
        ("京都の寺院", 2),
        ("寿司とはどんな料理", 3),
    ],
)
def test_japanese_queries_with_bigrams(query, expected):
    index = BM25Index(JA_DOCS, tokenizer="bigram")
    assert index.search(query, top_k=2)[0][0] == expected


def test_top_k_limits_and_only_matching_documents_are_returned():
    index = BM25Index(EN_DOCS, tokenizer="whitespace")
    assert len(index.search("the", top_k=1)) == 1
    assert {position for position, _ in index.search("dogs", top_k=10)} == {1, 4}
    assert index.search("zebra", top_k=10) == []
    assert index.search("", top_k=10) == []


def test_equal_scores_keep_the_lower_position_first():
    index = BM25Index(["apple pie", "banana", "apple pie", "apple pie"], tokenizer="whitespace")
    assert [position for position, _ in index.search("apple", top_k=2)] == [0, 2]


def test_custom_tokenizer_function():
    index = BM25Index(["a-b c", "b-c"], tokenizer=lambda text: text.split("-"))
    assert index.tokenizer_name == "<lambda>"
    # The same function splits documents and queries: "b c" is one term, found in doc 0 only.
    assert [position for position, _ in index.search("b c", top_k=5)] == [0]
    assert [position for position, _ in index.search("c", top_k=5)] == [1]


def test_empty_index():
    index = BM25Index([], tokenizer="whitespace")
    assert len(index) == 0
    assert index.search("anything", top_k=5) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k1": -1.0}, r"^k1 must be a number >= 0, got -1\.0\.$"),
        ({"b": 1.5}, r"^b must be a number between 0 and 1, got 1\.5\.$"),
        ({"tokenizer": "kuromoji"}, r"^tokenizer must be one of 'auto', 'fugashi', 'bigram', "),
    ],
)
def test_bad_parameters(kwargs, message):
    with pytest.raises(ValueError, match=message):
        BM25Index(EN_DOCS, **kwargs)


@pytest.mark.parametrize("top_k", [0, -1, 1.5, True])
def test_bad_top_k(top_k):
    index = BM25Index(EN_DOCS, tokenizer="whitespace")
    with pytest.raises(ValueError, match=rf"^top_k must be a positive int, got {top_k!r}\.$"):
        index.search("cat", top_k=top_k)


def test_non_str_document_is_named():
    with pytest.raises(TypeError, match=r"^texts\[1\] must be a str, got NoneType\.$"):
        BM25Index(["ok", None], tokenizer="whitespace")
