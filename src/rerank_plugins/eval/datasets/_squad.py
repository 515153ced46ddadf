r"""The ``"squad"`` format: SQuAD-style JSON (SQuAD, JSQuAD, JaQuAD).

Every paragraph is a document (identical paragraphs are merged), every question a query
whose one relevant document is its own paragraph; the article's paragraphs are its
candidates. ``path`` may be a file, a directory (its ``*.json`` files) or a glob
(``"JaQuAD/jaquad_dev_*.json"``). JSQuAD writes contexts as ``"<title> [SEP] <text>"``; they
become ``"<title>\n<text>"`` (a literal ``[SEP]`` would be read as a special token by BERT
tokenizers). SQuAD 2.0 questions marked ``is_impossible`` are skipped: their paragraph does
not answer them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rerank_plugins.eval.datasets._common import (
    Corpus,
    EvalDataset,
    Queries,
    dataset_name,
    expand_paths,
    join_title,
    logger,
    optional_id,
    preview,
    read_json,
    required_str,
)

if TYPE_CHECKING:
    from pathlib import Path


def load_squad(path: str | Path) -> EvalDataset:
    """Load SQuAD-style JSON (a file, a directory of ``*.json`` or a glob); see the module."""
    corpus = Corpus()
    queries = Queries()
    qrels: dict[str, dict[str, int]] = {}
    candidates: dict[str, list[str]] = {}
    skipped = 0
    for file in expand_paths(path, ["*.json"]):
        data = read_json(file)
        articles = data.get("data") if isinstance(data, dict) else None
        if not isinstance(articles, list):
            msg = (
                f"{file}: expected SQuAD JSON, an object with a 'data' list of articles; "
                f"got {preview(data)}. Is this the right --format?"
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
                context = required_str(paragraph, ["context"], where)
                title, sep, body = context.partition(" [SEP] ")
                docid = corpus.add(join_title(title, body) if sep else context, None, where)
                if docid not in article_docs:
                    article_docs.append(docid)
                qas = paragraph.get("qas", [])
                if not isinstance(qas, list):
                    msg = f"{where}: 'qas' must be a list, got {preview(qas)}."
                    raise ValueError(msg)
                for q, qa in enumerate(qas):
                    qa_where = f"{where}.qas[{q}]"
                    if not isinstance(qa, dict):
                        msg = f"{qa_where}: expected an object with 'id' and 'question'."
                        raise ValueError(msg)
                    if qa.get("is_impossible") is True:
                        skipped += 1
                        continue
                    question = required_str(qa, ["question"], qa_where)
                    qid = optional_id(qa, ["id"], qa_where)
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
    return EvalDataset(dataset_name(path), corpus.texts, queries.texts, qrels, candidates)
