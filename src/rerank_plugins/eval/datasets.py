r"""Loaders that turn retrieval and QA data sets into one structure, :class:`EvalDataset`.

Formats (``load_dataset(path, format)``):

* ``"squad"``: SQuAD-style JSON (SQuAD, JSQuAD, JaQuAD). Every paragraph is a document
  (identical paragraphs are merged), every question a query whose one relevant document
  is its own paragraph; the article's paragraphs are its candidates. ``path`` may be a
  file, a directory (its ``*.json`` files) or a glob (``"JaQuAD/jaquad_dev_*.json"``).
  JSQuAD writes contexts as ``"<title> [SEP] <text>"``; they become ``"<title>\n<text>"``
  (a literal ``[SEP]`` would be read as a special token by BERT tokenizers). SQuAD 2.0
  questions marked ``is_impossible`` are skipped: their paragraph does not answer them.
* ``"beir"``: a BEIR directory with ``corpus.jsonl``, ``queries.jsonl`` and
  ``qrels/<split>.tsv`` (``.gz`` accepted). Documents are ``"<title>\n<text>"``.
* ``"jqara"``: candidates given per query (JQaRA, or any reranking test set), as JSONL
  or CSV. Either one row per (query, passage), grouped by ``q_id``/``qid``/``query_id``
  (or by the query text)::

      {"q_id": "q1", "question": "...", "title": "...", "text": "...", "label": 1}

  or one JSON record per query::

      {"qid": "q1", "query": "...", "passages": ["...", {"title": "...", "text": "..."}],
       "labels": [1, 0]}

* ``"dpr"``: DPR/FiD-style JSONL (``.gz`` accepted) with ``question``, ``answers`` and
  ``ctxs: [{title, text, hasanswer, isgold}]``, such as NQ-open from "Lost in the
  Middle". All contexts are pooled into the corpus; a context is relevant when
  ``isgold`` is true (when the record marks gold contexts), else when ``hasanswer`` is.

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

import csv
import glob
import gzip
import io
import json
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TextIO

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

logger = logging.getLogger(__name__)

DatasetFormat = Literal["squad", "beir", "jqara", "dpr"]
FORMATS: tuple[DatasetFormat, ...] = ("squad", "beir", "jqara", "dpr")

_QUERY_KEYS = ("query", "question")
_QID_KEYS = ("q_id", "qid", "query_id", "query-id")
_DOCID_KEYS = ("passage_row_id", "passage_id", "docid", "doc_id", "pid", "_id", "id")
_TEXT_KEYS = ("text", "passage", "contents", "content")


@dataclass(frozen=True)
class EvalDataset:
    """Queries, documents and relevance judgments, ready for :func:`~.runner.evaluate`.

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


# --------------------------------------------------------------------------- helpers


class _Corpus:
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


class _Queries:
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
            f"{wheres[item_id]} ({_preview(texts[item_id])}, now {_preview(text)}); "
            "ids must be unique."
        )
        raise ValueError(msg)


class _Labels:
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


def _preview(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _expand(path: str | Path, patterns: Sequence[str]) -> list[Path]:
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


def _open_text(path: Path) -> TextIO:
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8")
    return path.open(encoding="utf-8")


def _read_json(path: Path) -> Any:
    try:
        with _open_text(path) as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        msg = f"{path}: not valid JSON ({err.msg} at line {err.lineno}, column {err.colno})."
        raise ValueError(msg) from err


def _read_jsonl(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield ``("file:line", record)`` for each non-blank line of a JSON-lines file."""
    with _open_text(path) as handle:
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


def _read_records(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield records from JSONL, a JSON list, or CSV/TSV (by extension)."""
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in (".csv", ".tsv"):
        with _open_text(path) as handle:
            reader = csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ",")
            for lineno, row in enumerate(reader, 2):
                yield f"{path}:{lineno}", dict(row)
        return
    if suffix == ".json":
        data = _read_json(path)
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
    yield from _read_jsonl(path)


def _get(record: Mapping[str, Any], keys: Sequence[str]) -> Any:
    for key in keys:
        if key in record and record[key] not in (None, ""):
            return record[key]
    return None


def _required_str(record: Mapping[str, Any], keys: Sequence[str], where: str) -> str:
    value = _get(record, keys)
    if not isinstance(value, str) or not value.strip():
        names = " or ".join(repr(key) for key in keys)
        msg = f"{where}: expected a non-empty string in {names}, got {_preview(value)}."
        raise ValueError(msg)
    return value


def _optional_id(record: Mapping[str, Any], keys: Sequence[str], where: str) -> str | None:
    value = _get(record, keys)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        msg = f"{where}: an id must be a string or an integer, got {_preview(value)}."
        raise ValueError(msg)
    return str(value)


def _label(value: Any, where: str) -> int:
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
    msg = f"{where}: a relevance label must be an integer or a boolean, got {_preview(value)}."
    raise ValueError(msg)


def join_title(title: object, text: str) -> str:
    r"""Return ``"<title>\n<text>"``, or ``text`` alone when the title is empty."""
    if isinstance(title, str) and title.strip():
        return f"{title.strip()}\n{text}"
    return text


def _name(path: str | Path) -> str:
    raw = str(path).rstrip("/\\")
    return Path(raw).name if not glob.has_magic(raw) else raw


# --------------------------------------------------------------------------- SQuAD


def load_squad(path: str | Path) -> EvalDataset:
    """Load SQuAD-style JSON (a file, a directory of ``*.json`` or a glob); see the module."""
    corpus = _Corpus()
    queries = _Queries()
    qrels: dict[str, dict[str, int]] = {}
    candidates: dict[str, list[str]] = {}
    skipped = 0
    for file in _expand(path, ["*.json"]):
        data = _read_json(file)
        articles = data.get("data") if isinstance(data, dict) else None
        if not isinstance(articles, list):
            msg = (
                f"{file}: expected SQuAD JSON, an object with a 'data' list of articles; "
                f"got {_preview(data)}. Is this the right --format?"
            )
            raise ValueError(msg)
        for a, article in enumerate(articles):
            paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
            if not isinstance(paragraphs, list):
                msg = f"{file}: data[{a}]: expected a 'paragraphs' list."
                raise ValueError(msg)
            article_docs: list[str] = []
            article_qids: list[str] = []
            for p, paragraph in enumerate(paragraphs):
                where = f"{file}: data[{a}].paragraphs[{p}]"
                if not isinstance(paragraph, dict):
                    msg = f"{where}: expected an object with 'context' and 'qas'."
                    raise ValueError(msg)
                context = _required_str(paragraph, ["context"], where)
                title, sep, body = context.partition(" [SEP] ")
                docid = corpus.add(join_title(title, body) if sep else context, None, where)
                if docid not in article_docs:
                    article_docs.append(docid)
                qas = paragraph.get("qas", [])
                if not isinstance(qas, list):
                    msg = f"{where}: 'qas' must be a list, got {_preview(qas)}."
                    raise ValueError(msg)
                for q, qa in enumerate(qas):
                    qa_where = f"{where}.qas[{q}]"
                    if not isinstance(qa, dict):
                        msg = f"{qa_where}: expected an object with 'id' and 'question'."
                        raise ValueError(msg)
                    if qa.get("is_impossible") is True:
                        skipped += 1
                        continue
                    question = _required_str(qa, ["question"], qa_where)
                    qid = _optional_id(qa, ["id"], qa_where)
                    if qid is None:
                        msg = f"{qa_where}: the question has no 'id'."
                        raise ValueError(msg)
                    if qid in qrels and docid not in qrels[qid]:
                        msg = f"{qa_where}: question id {qid!r} appears twice; ids must be unique."
                        raise ValueError(msg)
                    queries.add(qid, question, qa_where)
                    qrels[qid] = {docid: 1}
                    article_qids.append(qid)
            for qid in article_qids:
                candidates[qid] = list(article_docs)  # a list of its own per query
    if skipped:
        logger.info("Skipped %d unanswerable (is_impossible) questions in %s.", skipped, path)
    return EvalDataset(_name(path), corpus.texts, queries.texts, qrels, candidates)


# --------------------------------------------------------------------------- BEIR


def _beir_file(root: Path, name: str) -> Path:
    for candidate in (root / name, root / f"{name}.gz"):
        if candidate.is_file():
            return candidate
    present = ", ".join(sorted(p.name for p in root.iterdir())) or "nothing"
    msg = f"BEIR data set {str(root)!r} has no {name} (it has: {present})."
    raise FileNotFoundError(msg)


def load_beir(path: str | Path, *, split: str = "test") -> EvalDataset:
    """Load a BEIR directory: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.

    Only queries with judgments in the split are kept. Judgments of documents missing
    from the corpus are dropped, with a warning.
    """
    root = Path(path).expanduser()
    if not root.is_dir():
        msg = f"A BEIR data set is a directory; {str(path)!r} is not one. Check the path."
        raise FileNotFoundError(msg)
    documents = _Corpus()
    for where, record in _read_jsonl(_beir_file(root, "corpus.jsonl")):
        docid = _optional_id(record, ["_id"], where)
        if docid is None:
            msg = f"{where}: the document has no '_id'."
            raise ValueError(msg)
        text = record.get("text")
        if not isinstance(text, str):
            msg = f"{where}: 'text' must be a string, got {_preview(text)}."
            raise ValueError(msg)
        documents.add(join_title(record.get("title"), text), docid, where)
    corpus = documents.texts

    queries_read = _Queries()
    for where, record in _read_jsonl(_beir_file(root, "queries.jsonl")):
        qid = _optional_id(record, ["_id"], where)
        if qid is None:
            msg = f"{where}: the query has no '_id'."
            raise ValueError(msg)
        queries_read.add(qid, _required_str(record, ["text"], where), where)
    all_queries = queries_read.texts

    labels = _Labels()
    missing_docs = 0
    qrels_file = _beir_file(root / "qrels", f"{split}.tsv") if (root / "qrels").is_dir() else None
    if qrels_file is None:
        msg = f"BEIR data set {str(path)!r} has no qrels/ directory with {split}.tsv."
        raise FileNotFoundError(msg)
    with _open_text(qrels_file) as handle:
        for lineno, line in enumerate(handle, 1):
            fields = line.rstrip("\r\n").split("\t")
            if not line.strip() or (lineno == 1 and fields[0] == "query-id"):
                continue
            where = f"{qrels_file}:{lineno}"
            if len(fields) != 3:
                msg = (
                    f"{where}: expected 3 tab-separated fields (query-id, corpus-id, score), "
                    f"got {_preview(line.rstrip())}."
                )
                raise ValueError(msg)
            qid, docid, score = fields
            if qid not in all_queries:
                msg = f"{where}: query {qid!r} is not in queries.jsonl."
                raise ValueError(msg)
            if docid not in corpus:
                missing_docs += 1
                continue
            labels.add(qid, docid, _label(score, where))
    if missing_docs:
        logger.warning("Dropped %d judgments of documents missing from the corpus.", missing_docs)
    labels.warn_repeats(qrels_file)
    queries = {qid: text for qid, text in all_queries.items() if qid in labels.qrels}
    return EvalDataset(_name(root), corpus, queries, labels.qrels)


# --------------------------------------------------------------------------- JQaRA


def _passage(value: Any, where: str) -> tuple[str, str | None]:
    """Return ``(text, given id)`` of a passage given as a string or an object."""
    if isinstance(value, str) and value.strip():
        return value, None
    if isinstance(value, dict):
        text = _required_str(value, _TEXT_KEYS, where)
        return join_title(value.get("title"), text), _optional_id(value, _DOCID_KEYS, where)
    msg = f"{where}: a passage must be a string or an object with 'text', got {_preview(value)}."
    raise ValueError(msg)


def load_jqara(path: str | Path) -> EvalDataset:
    """Load per-query candidates with labels (JSONL, JSON or CSV; see the module)."""
    corpus = _Corpus()
    queries = _Queries()
    judgments = _Labels()
    candidates: dict[str, list[str]] = {}
    qid_by_text: dict[str, str] = {}
    for file in _expand(path, ["*.jsonl", "*.jsonl.gz", "*.json", "*.csv", "*.tsv"]):
        for where, record in _read_records(file):
            query = _required_str(record, _QUERY_KEYS, where)
            qid = _optional_id(record, _QID_KEYS, where)
            if qid is None:
                qid = qid_by_text.setdefault(query, f"q{len(qid_by_text)}")
            queries.add(qid, query, where)
            if "passages" in record:
                passages = record["passages"]
                labels = record.get("labels")
                if not isinstance(passages, list) or not isinstance(labels, list):
                    msg = f"{where}: 'passages' and 'labels' must both be lists."
                    raise ValueError(msg)
                if len(passages) != len(labels):
                    msg = (
                        f"{where}: {len(passages)} passages but {len(labels)} labels; "
                        "give one label per passage."
                    )
                    raise ValueError(msg)
                rows = [
                    (*_passage(passage, f"{where}: passages[{i}]"), label)
                    for i, (passage, label) in enumerate(zip(passages, labels, strict=True))
                ]
            else:
                text = _required_str(record, _TEXT_KEYS, where)
                docid = _optional_id(record, _DOCID_KEYS, where)
                if "label" not in record:
                    msg = f"{where}: the row has no 'label' (or give 'passages' and 'labels')."
                    raise ValueError(msg)
                rows = [(join_title(record.get("title"), text), docid, record["label"])]
            judgments.qrels.setdefault(qid, {})
            listed = candidates.setdefault(qid, [])
            for text, given_id, label in rows:
                docid = corpus.add(text, given_id, where)
                judgments.add(qid, docid, _label(label, where))
                if docid not in listed:
                    listed.append(docid)
    judgments.warn_repeats(path)
    return EvalDataset(_name(path), corpus.texts, queries.texts, judgments.qrels, candidates)


# --------------------------------------------------------------------------- DPR / NQ


def load_dpr(path: str | Path) -> EvalDataset:
    """Load DPR/FiD-style ``question`` + ``ctxs`` records, pooling contexts as the corpus."""
    corpus = _Corpus()
    queries = _Queries()
    labels = _Labels()
    candidates: dict[str, list[str]] = {}
    count = 0
    for file in _expand(path, ["*.jsonl", "*.jsonl.gz", "*.json"]):
        for where, record in _read_records(file):
            query = _required_str(record, _QUERY_KEYS, where)
            qid = _optional_id(record, ["id", *_QID_KEYS], where) or f"q{count}"
            count += 1
            ctxs = record.get("ctxs")
            if not isinstance(ctxs, list) or not all(isinstance(c, dict) for c in ctxs):
                msg = f"{where}: expected 'ctxs', a list of objects with 'title' and 'text'."
                raise ValueError(msg)
            queries.add(qid, query, where)
            gold_key = "isgold" if any("isgold" in ctx for ctx in ctxs) else "hasanswer"
            labels.qrels.setdefault(qid, {})
            listed = candidates.setdefault(qid, [])
            for i, ctx in enumerate(ctxs):
                ctx_where = f"{where}: ctxs[{i}]"
                text, given_id = _passage(ctx, ctx_where)
                docid = corpus.add(text, given_id, ctx_where)
                labels.add(qid, docid, _label(ctx.get(gold_key, 0), ctx_where))
                if docid not in listed:
                    listed.append(docid)
    labels.warn_repeats(path)
    return EvalDataset(_name(path), corpus.texts, queries.texts, labels.qrels, candidates)
