"""The ``"jqara"`` format: candidates given per query (JQaRA, or any reranking test set).

JSONL, JSON or CSV/TSV. Either one row per (query, passage), grouped by
``q_id``/``qid``/``query_id`` (or by the query text)::

    {"q_id": "q1", "question": "...", "title": "...", "text": "...", "label": 1}

or one JSON record per query::

    {"qid": "q1", "query": "...", "passages": ["...", {"title": "...", "text": "..."}],
     "labels": [1, 0]}
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rerank_plugins.eval.datasets._common import (
    DOCID_KEYS,
    QID_KEYS,
    QUERY_KEYS,
    TEXT_KEYS,
    Corpus,
    EvalDataset,
    Labels,
    Queries,
    dataset_name,
    expand_paths,
    join_title,
    optional_id,
    parse_label,
    read_passage,
    read_records,
    required_str,
)

if TYPE_CHECKING:
    from pathlib import Path


def load_jqara(path: str | Path) -> EvalDataset:
    """Load per-query candidates with labels (JSONL, JSON or CSV; see the module)."""
    corpus = Corpus()
    queries = Queries()
    judgments = Labels()
    candidates: dict[str, list[str]] = {}
    qid_by_text: dict[str, str] = {}
    for file in expand_paths(path, ["*.jsonl", "*.jsonl.gz", "*.json", "*.csv", "*.tsv"]):
        for where, record in read_records(file):
            query = required_str(record, QUERY_KEYS, where)
            qid = optional_id(record, QID_KEYS, where)
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
                    (*read_passage(passage, f"{where}: passages[{i}]"), label)
                    for i, (passage, label) in enumerate(zip(passages, labels, strict=True))
                ]
            else:
                text = required_str(record, TEXT_KEYS, where)
                docid = optional_id(record, DOCID_KEYS, where)
                if "label" not in record:
                    msg = f"{where}: the row has no 'label' (or give 'passages' and 'labels')."
                    raise ValueError(msg)
                rows = [(join_title(record.get("title"), text), docid, record["label"])]
            judgments.qrels.setdefault(qid, {})
            listed = candidates.setdefault(qid, [])
            for text, given_id, label in rows:
                docid = corpus.add(text, given_id, where)
                judgments.add(qid, docid, parse_label(label, where))
                if docid not in listed:
                    listed.append(docid)
    judgments.warn_repeats(path)
    return EvalDataset(dataset_name(path), corpus.texts, queries.texts, judgments.qrels, candidates)
