"""Evaluate a reranker on a retrieval data set: BM25 first stage, reranking, nDCG/MRR/MAP/Recall.

Example::

    from rerank_plugins import get_scorer
    from rerank_plugins.eval import evaluate, load_dataset

    dataset = load_dataset("JSQuAD/valid-v1.3.json", "squad")
    report = evaluate(get_scorer("hotchpotch/japanese-reranker-cross-encoder-xsmall-v1"), dataset)
    print(report.format_table())

Submodules load on first use, so importing this package (as the CLI does) stays light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rerank_plugins.eval.bm25 import BM25Index
    from rerank_plugins.eval.datasets import (
        FORMATS,
        EvalDataset,
        load_beir,
        load_dataset,
        load_dpr,
        load_jqara,
        load_squad,
    )
    from rerank_plugins.eval.runner import EvalReport, evaluate

__all__ = [
    "FORMATS",
    "BM25Index",
    "EvalDataset",
    "EvalReport",
    "evaluate",
    "load_beir",
    "load_dataset",
    "load_dpr",
    "load_jqara",
    "load_squad",
]

_WHERE = {
    "BM25Index": "bm25",
    "EvalDataset": "datasets",
    "FORMATS": "datasets",
    "load_beir": "datasets",
    "load_dataset": "datasets",
    "load_dpr": "datasets",
    "load_jqara": "datasets",
    "load_squad": "datasets",
    "EvalReport": "runner",
    "evaluate": "runner",
}


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        msg = f"module {__name__!r} has no attribute {name!r}"
        raise AttributeError(msg)
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
