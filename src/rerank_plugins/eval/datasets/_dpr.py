"""The ``"dpr"`` format: DPR/FiD-style JSONL (``.gz`` accepted), such as NQ-open.

Records have ``question``, ``answers`` and ``ctxs: [{title, text, hasanswer, isgold}]``, as
in NQ-open from "Lost in the Middle". All contexts are pooled into the corpus; a context is
relevant when ``isgold`` is true (when the record marks gold contexts), else when
``hasanswer`` is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rerank_plugins.eval.datasets._common import (
    QID_KEYS,
    QUERY_KEYS,
    Corpus,
    EvalDataset,
    Labels,
    Queries,
    dataset_name,
    expand_paths,
    optional_id,
    parse_label,
    read_passage,
    read_records,
    required_str,
)

if TYPE_CHECKING:
    from pathlib import Path


def load_dpr(path: str | Path) -> EvalDataset:
    """Load DPR/FiD-style ``question`` + ``ctxs`` records, pooling contexts as the corpus."""
    corpus = Corpus()
    queries = Queries()
    labels = Labels()
    candidates: dict[str, list[str]] = {}
    count = 0
    for file in expand_paths(path, ["*.jsonl", "*.jsonl.gz", "*.json"]):
        for where, record in read_records(file):
            query = required_str(record, QUERY_KEYS, where)
            qid = optional_id(record, ["id", *QID_KEYS], where) or f"q{count}"
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
                text, given_id = read_passage(ctx, ctx_where)
                docid = corpus.add(text, given_id, ctx_where)
                labels.add(qid, docid, parse_label(ctx.get(gold_key, 0), ctx_where))
                if docid not in listed:
                    listed.append(docid)
    labels.warn_repeats(path)
    return EvalDataset(dataset_name(path), corpus.texts, queries.texts, labels.qrels, candidates)
