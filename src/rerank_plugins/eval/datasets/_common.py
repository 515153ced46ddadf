"""What every format's loader shares: :class:`EvalDataset`, id and label bookkeeping, readers.

The bookkeeping classes enforce the two rules of :mod:`rerank_plugins.eval.datasets`: an id
given two different texts raises, and a pair judged twice keeps its highest label.
"""

from __future__ import annotations

import csv
import glob
import gzip
import io
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

logger = logging.getLogger("rerank_plugins.eval.datasets")

QUERY_KEYS = ("query", "question")
QID_KEYS = ("q_id", "qid", "query_id", "query-id")
DOCID_KEYS = ("passage_row_id", "passage_id", "docid", "doc_id", "pid", "_id", "id")
TEXT_KEYS = ("text", "passage", "contents", "content")


@dataclass(frozen=True)
class EvalDataset:
    """Queries, documents and relevance judgments, ready for :func:`rerank_plugins.eval.evaluate`.

    Attributes:
        name: A short label for reports (the file or directory name).
        corpus: ``{docid: text}``.
        queries: ``{qid: text}``, in the data's order.
        qrels: ``{qid: {docid: relevance}}``; relevance ``>= 1`` is relevant.
        candidates: ``{qid: [docid, ...]}`` when the data gives each query its own
            candidates (in the given order), else ``None``.
    """

    name: str
    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    candidates: dict[str, list[str]] | None = field(default=None)

    def __repr__(self) -> str:
        given = "none" if self.candidates is None else f"{len(self.candidates)} lists"
        return (
            f"EvalDataset({self.name!r}, {len(self.queries)} queries, "
            f"{len(self.corpus)} documents, candidates: {given})"
        )


class Corpus:
    """Assigns document ids: given ones are checked, missing ones are ``p<n>`` by text."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}
        self._by_text: dict[str, str] = {}
        self._where: dict[str, str] = {}

    def add(self, text: str, docid: str | None, where: str) -> str:
        if docid is None:
            docid = self._by_text.get(text)
            if docid is None:
                docid = f"p{len(self._by_text)}"
                while docid in self.texts:
                    docid += "_"
        else:
            _check_unique("document", docid, text, where, self.texts, self._where)
        self.texts.setdefault(docid, text)
        self._where.setdefault(docid, where)
        self._by_text.setdefault(text, docid)
        return docid


class Queries:
    """Query texts by id, in order; an id given two different texts raises."""

    def __init__(self) -> None:
        self.texts: dict[str, str] = {}
        self._where: dict[str, str] = {}

    def add(self, qid: str, text: str, where: str) -> None:
        _check_unique("query", qid, text, where, self.texts, self._where)
        self.texts.setdefault(qid, text)
        self._where.setdefault(qid, where)


def _check_unique(
    kind: str, item_id: str, text: str, where: str, texts: dict[str, str], wheres: dict[str, str]
) -> None:
    """Raise when ``item_id`` already has a different text; name the id and both places."""
    if item_id in texts and texts[item_id] != text:
        msg = (
            f"{where}: {kind} id {item_id!r} was already given a different text at "
            f"{wheres[item_id]} ({preview(texts[item_id])}, now {preview(text)}); "
            "ids must be unique."
        )
        raise ValueError(msg)


class Labels:
    """Relevance labels; a (query, document) pair judged twice keeps its highest label."""

    def __init__(self) -> None:
        self.qrels: dict[str, dict[str, int]] = {}
        self.repeated = 0
        self.differing = 0

    def add(self, qid: str, docid: str, label: int) -> None:
        judged = self.qrels.setdefault(qid, {})
        if docid in judged:
            self.repeated += 1
            self.differing += judged[docid] != label
            label = max(label, judged[docid])
        judged[docid] = label

    def warn_repeats(self, source: str | Path) -> None:
        if self.repeated:
            logger.warning(
                "%s: %d repeated (query, document) judgments, %d of them with a different "
                "label; each pair keeps its highest label.",
                source,
                self.repeated,
                self.differing,
            )


def preview(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def expand_paths(path: str | Path, patterns: Sequence[str]) -> list[Path]:
    """Return the files ``path`` names: itself, a directory's matches, or a glob's."""
    raw = str(path)
    candidate = Path(raw).expanduser()
    if candidate.is_file():
        return [candidate]
    if candidate.is_dir():
        found = sorted({p for pattern in patterns for p in candidate.glob(pattern) if p.is_file()})
        if not found:
            wanted = ", ".join(patterns)
            msg = f"No data files ({wanted}) in directory {raw!r}; pass a file or a glob."
            raise FileNotFoundError(msg)
        return found
    if glob.has_magic(raw):
        found = sorted(Path(p) for p in glob.glob(str(candidate)) if Path(p).is_file())
        if not found:
            msg = f"The pattern {raw!r} matches no file; check the path."
            raise FileNotFoundError(msg)
        return found
    msg = f"No such file or directory: {raw!r}; check the path."
    raise FileNotFoundError(msg)


def open_text(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return path.open(encoding="utf-8")


def read_json(path: Path) -> Any:
    try:
        with open_text(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        msg = f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})."
        raise ValueError(msg) from err


def read_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``("file:line", record)`` for each non-blank line of a JSON-lines file."""
    with open_text(path) as handle:
        for lineno, line in enumerate(handle, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                msg = f"{where}: not valid JSON ({err.msg} at column {err.colno})."
                raise ValueError(msg) from err
            if not isinstance(record, dict):
                msg = f"{where}: expected a JSON object, got {type(record).__name__}."
                raise ValueError(msg)
            yield where, record


def read_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield records from JSONL, a JSON list, or CSV/TSV (by extension)."""
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in (".csv", ".tsv"):
        with open_text(path) as handle:
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            for lineno, row in enumerate(reader, 2):
                yield f"{path}:{lineno}", dict(row)
        return
    if suffix == ".json":
        data = read_json(path)
        if not isinstance(data, list):
            msg = f"{path}: expected a JSON list of records, got {type(data).__name__}."
            raise ValueError(msg)
        for index, record in enumerate(data):
            where = f"{path}: record {index}"
            if not isinstance(record, dict):
                msg = f"{where}: expected a JSON object, got {type(record).__name__}."
                raise ValueError(msg)
            yield where, record
        return
    yield from read_jsonl(path)


def _get(record: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if key in record and record[key] not in (None, ""):
            return record[key]
    return None


def required_str(record: Mapping[str, Any], keys: Sequence[str], where: str) -> str:
    value = _get(record, keys)
    if not isinstance(value, str) or not value.strip():
        names = " or ".join(repr(key) for key in keys)
        msg = f"{where}: expected a non-empty string in {names}, got {preview(value)}."
        raise ValueError(msg)
    return value


def optional_id(record: Mapping[str, Any], keys: Sequence[str], where: str) -> str | None:
    value = _get(record, keys)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        msg = f"{where}: an id must be a string or an integer, got {preview(value)}."
        raise ValueError(msg)
    return str(value)


def parse_label(value: Any, where: str) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("true", "false"):
            return int(text == "true")
        try:
            return int(float(text))
        except ValueError:
            pass
    msg = f"{where}: a relevance label must be an integer or a boolean, got {preview(value)}."
    raise ValueError(msg)


def join_title(title: object, text: str) -> str:
    r"""Return ``"<title>\n<text>"``, or ``text`` alone when the title is empty."""
    if isinstance(title, str) and title.strip():
        return f"{title.strip()}\n{text}"
    return text


def dataset_name(path: str | Path) -> str:
    raw = str(path).rstrip("/\\")
    return Path(raw).name if not glob.has_magic(raw) else raw


def read_passage(value: Any, where: str) -> tuple[str, str | None]:
    """Return ``(text, given id)`` of a passage given as a string or an object."""
    if isinstance(value, str) and value.strip():
        return value, None
    if isinstance(value, dict):
        text = required_str(value, TEXT_KEYS, where)
        return join_title(value.get("title"), text), optional_id(value, DOCID_KEYS, where)
    msg = f"{where}: a passage must be a string or an object with 'text', got {preview(value)}."
    raise ValueError(msg)
