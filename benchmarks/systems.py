"""The rerankers under test, each behind the same small interface: load, then score one request.

Every system reranks the same (query, 100 passages) requests with the same local model. Peers
are used the way their documentation shows; ours through the public API.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _common import RESULTS, Request

ONNX_CACHE = RESULTS / "onnx-cache"


@dataclass
class System:
    """A loaded reranker: ``run(request)`` returns scores in input order (or None) and top-5."""

    name: str
    run: Callable[[Request], tuple[list[float] | None, list[int]]]
    closer: Callable[[], None] | None = None


def _top5(scores: list[float]) -> list[int]:
    return sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:5]


def load_sentence_transformers(model: Path) -> System:
    from sentence_transformers import CrossEncoder

    encoder = CrossEncoder(str(model), device="cpu")

    def run(request: Request) -> tuple[list[float], list[int]]:
        scores = encoder.predict([(request.query, p) for p in request.passages], batch_size=32)
        values = [float(x) for x in scores]
        return values, _top5(values)

    return System("sentence-transformers", run)


def load_langchain(model: Path) -> System:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # langchain-community announces its sunset on import
        from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
        from langchain_community.cross_encoders import HuggingFaceCrossEncoder
    from langchain_core.documents import Document

    reranker = CrossEncoderReranker(
        model=HuggingFaceCrossEncoder(model_name=str(model), model_kwargs={"device": "cpu"}),
        top_n=5,
    )

    def run(request: Request) -> tuple[None, list[int]]:
        docs = [Document(page_content=p, metadata={"i": i}) for i, p in enumerate(request.passages)]
        kept = reranker.compress_documents(docs, request.query)
        return None, [d.metadata["i"] for d in kept]

    return System("langchain CrossEncoderReranker", run)


def load_llama_index(model: Path) -> System:
    from llama_index.core.postprocessor import SentenceTransformerRerank
    from llama_index.core.schema import NodeWithScore, TextNode

    reranker = SentenceTransformerRerank(model=str(model), top_n=5, device="cpu")

    def run(request: Request) -> tuple[None, list[int]]:
        nodes = [
            NodeWithScore(node=TextNode(text=p, id_=str(i)), score=0.0)
            for i, p in enumerate(request.passages)
        ]
        kept = reranker.postprocess_nodes(nodes, query_str=request.query)
        return None, [int(n.node.node_id) for n in kept]

    return System("llama-index SentenceTransformerRerank", run)


def load_ours(model: Path, name: str, **options: Any) -> System:
    os.environ.setdefault("RERANK_PLUGINS_CACHE_DIR", str(ONNX_CACHE))
    from rerank_plugins import CrossEncoderScorer

    scorer = CrossEncoderScorer(str(model), device="cpu", **options)

    def run(request: Request) -> tuple[list[float], list[int]]:
        values = scorer.score(request.query, request.passages)
        return values, _top5(values)

    return System(name, run, scorer.close)


# name -> (loader, options); "ours: ..." rows use rerank_plugins.
SYSTEMS: dict[str, tuple[str, dict[str, Any]]] = {
    "sentence-transformers": ("st", {}),
    "langchain": ("langchain", {}),
    "llama-index": ("llama_index", {}),
    "ours default": ("ours", {}),  # backend="auto": ONNX Runtime fp32 on the CPU
    "ours torch fp32": ("ours", {"backend": "torch"}),
    "ours torch bf16": ("ours", {"dtype": "bfloat16", "backend": "torch"}),
    # backend="auto": OpenVINO where the CPU has native bf16 and openvino is installed.
    "ours bf16": ("ours", {"dtype": "bfloat16"}),
    "ours onnx int8": ("ours", {"backend": "onnx", "onnx_quantize": True}),
    # Tokenize the next round while the current one runs (off by default on the CPU).
    "ours default, overlap": ("ours", {"overlap_tokenization": True}),
    "ours torch fp32, overlap": ("ours", {"backend": "torch", "overlap_tokenization": True}),
}
# Systems whose first load exports an ONNX model (the startup runs time it separately).
EXPORTS = frozenset({"ours default", "ours onnx int8", "ours default, overlap"})


def load(name: str, model: Path) -> System:
    """Load the system called ``name`` (a key of :data:`SYSTEMS`) on ``model``."""
    kind, options = SYSTEMS[name]
    if kind == "st":
        return load_sentence_transformers(model)
    if kind == "langchain":
        return load_langchain(model)
    if kind == "llama_index":
        return load_llama_index(model)
    system = load_ours(model, name, **options)
    return system


STARTUP_SNIPPET = """
import json, os, resource, sys, time
start = time.perf_counter()
sys.path.insert(0, {bench!r})
os.environ["RERANK_PLUGINS_CACHE_DIR"] = {cache!r}
import warnings; warnings.simplefilter("ignore")
from systems import load
from _common import Request
system = load({name!r}, __import__("pathlib").Path({model!r}))
loaded = time.perf_counter()
system.run(Request({query!r}, {passages!r}))
first = time.perf_counter()
# VmHWM, not ru_maxrss: the latter keeps the parent's peak across fork + exec.
hwm = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
rss = int(hwm[0].split()[1]) / 1024 if hwm else peak / 1024
print(json.dumps({{"load_s": loaded - start, "first_score_s": first - start, "peak_rss_mib": rss}}))
"""
