r"""Loaders that turn retrieval and QA data sets into one structure, :class:`EvalDataset`.

Formats (``load_dataset(path, format)``), one module each:

* ``"squad"``: SQuAD-style JSON (SQuAD, JSQuAD, JaQuAD); see :func:`load_squad`.
* ``"beir"``: a BEIR directory (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``);
  see :func:`load_beir`.
* ``"jqara"``: candidates given per query (JQaRA, or any reranking test set), as JSONL or
  CSV; see :func:`load_jqara`.
* ``"dpr"``: DPR/FiD-style JSONL with ``question`` and ``ctxs`` (NQ-open from "Lost in the
  Middle"); see :func:`load_dpr`.

Every document text comes from the data; documents get the ids the data gives them, or
``p0``, ``p1``... in order of first appearance.

Two rules hold for every format:

* An id (of a document or a query) given twice with different texts raises ``ValueError``
  naming the id and both places (file and line, or record); given twice with the same
  text, it is the same item.
* A (query, document) pair judged more than once keeps its highest label (so a positive
  is never lost to a later 0), and a warning gives the counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from rerank_plugins.eval.datasets._beir import load_beir
from rerank_plugins.eval.datasets._common import EvalDataset, join_title
from rerank_plugins.eval.datasets._dpr import load_dpr
from rerank_plugins.eval.datasets._jqara import load_jqara
from rerank_plugins.eval.datasets._squad import load_squad

if TYPE_CHECKING:
    from pathlib import Path

__all__ = [
    "FORMATS",
    "EvalDataset",
    "join_title",
    "load_beir",
    "load_dataset",
    "load_dpr",
    "load_jqara",
    "load_squad",
]

DatasetFormat = Literal["squad", "beir", "jqara", "dpr"]
FORMATS: tuple[DatasetFormat, ...] = ("squad", "beir", "jqara", "dpr")


def load_dataset(path: str | Path, format: str, *, split: str = "test") -> EvalDataset:
    """Load ``path`` as ``format`` (one of :data:`FORMATS`); see the module docstring.

    Args:
        path: A file, a directory or a glob pattern, as the format accepts.
        format: ``"squad"``, ``"beir"``, ``"jqara"`` or ``"dpr"``.
        split: The BEIR qrels split (``qrels/<split>.tsv``); other formats ignore it.

    Raises:
        ValueError: ``format`` is unknown, or a record is malformed (the message names
            the file and the line or record).
        FileNotFoundError: ``path`` matches nothing, or a BEIR file is missing.
    """
    if format == "squad":
        return load_squad(path)
    if format == "beir":
        return load_beir(path, split=split)
    if format == "jqara":
        return load_jqara(path)
    if format == "dpr":
        return load_dpr(path)
    choices = ", ".join(repr(name) for name in FORMATS)
    msg = f"Unknown data set format {format!r}; use one of {choices}."
    raise ValueError(msg)
