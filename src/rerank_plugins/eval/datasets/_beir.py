r"""The ``"beir"`` format: a BEIR directory.

It holds ``corpus.jsonl``, ``queries.jsonl`` and ``qrels/<split>.tsv`` (``.gz`` accepted).
Documents are ``"<title>\n<text>"``.
"""

from __future__ import annotations

from pathlib import Path

from rerank_plugins.eval.datasets._common import (
    Corpus,
    EvalDataset,
    Labels,
    Queries,
    dataset_name,
    join_title,
    logger,
    open_text,
    optional_id,
    parse_label,
    preview,
    read_jsonl,
    required_str,
)


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
    documents = Corpus()
    for where, record in read_jsonl(_beir_file(root, "corpus.jsonl")):
        docid = optional_id(record, ["_id"], where)
        if docid is None:
            msg = f"{where}: the document has no '_id'."
            raise ValueError(msg)
        text = record.get("text")
        if not isinstance(text, str):
            msg = f"{where}: 'text' must be a string, got {preview(text)}."
            raise ValueError(msg)
        documents.add(join_title(record.get("title"), text), docid, where)
    corpus = documents.texts

    queries_read = Queries()
    for where, record in read_jsonl(_beir_file(root, "queries.jsonl")):
        qid = optional_id(record, ["_id"], where)
        if qid is None:
            msg = f"{where}: the query has no '_id'."
            raise ValueError(msg)
        queries_read.add(qid, required_str(record, ["text"], where), where)
    all_queries = queries_read.texts

    labels = Labels()
    missing_docs = 0
    qrels_file = _beir_file(root / "qrels", f"{split}.tsv") if (root / "qrels").is_dir() else None
    if qrels_file is None:
        msg = f"BEIR data set {str(path)!r} has no qrels/ directory with {split}.tsv."
        raise FileNotFoundError(msg)
    with open_text(qrels_file) as handle:
        for lineno, line in enumerate(handle, 1):
            fields = line.rstrip("\r\n").split("\t")
            if not line.strip() or (lineno == 1 and fields[0] == "query-id"):
                continue
            where = f"{qrels_file}:{lineno}"
            if len(fields) != 3:
                msg = (
                    f"{where}: expected 3 tab-separated fields (query-id, corpus-id, score), "
                    f"got {preview(line.rstrip())}."
                )
                raise ValueError(msg)
            qid, docid, score = fields
            if qid not in all_queries:
                msg = f"{where}: query {qid!r} is not in queries.jsonl."
                raise ValueError(msg)
            if docid not in corpus:
                missing_docs += 1
                continue
            labels.add(qid, docid, parse_label(score, where))
    if missing_docs:
        logger.warning("Dropped %d judgments of documents missing from the corpus.", missing_docs)
    labels.warn_repeats(qrels_file)
    queries = {qid: text for qid, text in all_queries.items() if qid in labels.qrels}
    return EvalDataset(dataset_name(root), corpus, queries, labels.qrels)
