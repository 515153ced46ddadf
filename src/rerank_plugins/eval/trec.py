"""Read and write TREC run and qrels files, the formats ``trec_eval`` checks.

* Run: one line per retrieved document, ``qid Q0 docid rank score tag``.
* Qrels: one line per judgment, ``qid 0 docid relevance``.

Fields are separated by single spaces, so ids must not contain whitespace. Scores are
written with :func:`repr`, which round-trips every float exactly: ``trec_eval`` then sees
the same ties (and breaks them the same way, by docid) as
:mod:`rerank_plugins.eval.metrics`.
"""

from __future__ import annotations

import math
from pathlib import Path

from rerank_plugins.eval.metrics import Qrels, Run, rank_documents

__all__ = ["read_qrels", "read_run", "write_qrels", "write_run"]


def _check_id(kind: str, value: str) -> None:
    if not value or any(char.isspace() for char in value):
        msg = (
            f"{kind} {value!r} cannot be written to a TREC file: ids must be non-empty and "
            "contain no whitespace. Rename it in the data set."
        )
        raise ValueError(msg)


def write_run(path: str | Path, run: Run, *, tag: str = "rerank-plugins") -> Path:
    """Write ``run`` (``{qid: {docid: score}}``) as a TREC run file and return its path.

    Each query's documents are written best first, ranked as trec_eval ranks them (score
    descending, then docid descending), with ranks from 1. Parent directories are created.

    Raises:
        ValueError: An id or the tag contains whitespace, or a score is not finite.
    """
    _check_id("tag", tag)
    lines: list[str] = []
    for qid, scores in run.items():
        _check_id("query id", qid)
        for rank, docid in enumerate(rank_documents(scores), 1):
            _check_id("document id", docid)
            score = float(scores[docid])
            if not math.isfinite(score):
                msg = (
                    f"The score of document {docid!r} for query {qid!r} is {score}; "
                    "scores must be finite."
                )
                raise ValueError(msg)
            lines.append(f"{qid} Q0 {docid} {rank} {score!r} {tag}\n")
    return _write(path, lines)


def write_qrels(path: str | Path, qrels: Qrels) -> Path:
    """Write ``qrels`` (``{qid: {docid: relevance}}``) as a TREC qrels file; return its path.

    Raises:
        ValueError: An id contains whitespace.
    """
    lines: list[str] = []
    for qid, judgments in qrels.items():
        _check_id("query id", qid)
        for docid, relevance in judgments.items():
            _check_id("document id", docid)
            lines.append(f"{qid} 0 {docid} {int(relevance)}\n")
    return _write(path, lines)


def _write(path: str | Path, lines: list[str]) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", encoding="utf-8", newline="\n") as handle:
        handle.writelines(lines)
    return target


def _fields(path: Path, count: int) -> list[tuple[str, list[str]]]:
    rows: list[tuple[str, list[str]]] = []
    with path.open(encoding="utf-8") as handle:
        for lineno, line in enumerate(handle, 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) != count:
                msg = (
                    f"{path}:{lineno}: expected {count} space-separated fields, "
                    f"got {len(fields)}: {line.strip()!r}."
                )
                raise ValueError(msg)
            rows.append((f"{path}:{lineno}", fields))
    return rows


def read_run(path: str | Path) -> dict[str, dict[str, float]]:
    """Read a TREC run file into ``{qid: {docid: score}}`` (the rank column is ignored).

    Raises:
        ValueError: A line does not have six fields or its score is not a number.
    """
    run: dict[str, dict[str, float]] = {}
    for where, (qid, _, docid, _, score, _) in _fields(Path(path), 6):
        try:
            run.setdefault(qid, {})[docid] = float(score)
        except ValueError as err:
            msg = f"{where}: the score {score!r} is not a number."
            raise ValueError(msg) from err
    return run


def read_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """Read a TREC qrels file into ``{qid: {docid: relevance}}``.

    Raises:
        ValueError: A line does not have four fields or its relevance is not an integer.
    """
    qrels: dict[str, dict[str, int]] = {}
    for where, (qid, _, docid, relevance) in _fields(Path(path), 4):
        try:
            qrels.setdefault(qid, {})[docid] = int(relevance)
        except ValueError as err:
            msg = f"{where}: the relevance {relevance!r} is not an integer."
            raise ValueError(msg) from err
    return qrels
