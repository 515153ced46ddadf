"""Fill the LLM's context by tokens, not by a fixed count: budget, duplicates, order.

A hybrid first stage (a keyword index and a vector index over the same texts, chunked
differently) hands the reranker the same text twice and a chunk that another chunk contains.
``CrossEncoderRerank`` drops those copies before scoring (``deduplicate=True``), keeps the
best documents that fit ``max_context_tokens``, and lays them out best-first-and-last
(``order="long_context"``). The same options work in LangChain and in LlamaIndex; each
prints the kept documents, their token counts and the report.

Run::

    python examples/context_budget.py
    python examples/context_budget.py --model ./my-model --max-context-tokens 80
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.documents import Document
from langchain_core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, TextNode

from rerank_plugins.langchain import CONTEXT_EVENT
from rerank_plugins.langchain import CrossEncoderRerank as LangChainRerank
from rerank_plugins.llama_index import CrossEncoderRerank as LlamaIndexRerank

DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L6-v2"
DEFAULT_QUESTION = "How many hours a day does a cat sleep?"
CATS = (
    "Cats are crepuscular: they are most active at dawn and dusk. An adult cat sleeps "
    "twelve to sixteen hours a day, and a kitten even more."
)

# What a hybrid first stage returns: (source, text). The vector index's copy of "cats"
# differs only in spacing and case; its larger chunk contains the keyword index's chunk.
CANDIDATES = [
    ("keyword:cats", CATS),
    ("vector:cats", "  " + CATS.upper().replace(" ", "  ") + "\n"),
    ("vector:cats-large", CATS + " Older cats nap more often, but for shorter spells."),
    (
        "keyword:volcanoes",
        "A volcano erupts when pressure from gas-rich magma beneath the crust forces it up "
        "through vents. Lava flows, ash clouds and volcanic bombs can follow.",
    ),
    (
        "vector:trains",
        "Europe's high-speed trains run at up to 320 km/h on dedicated lines, making rail "
        "faster than flying between many city centres.",
    ),
    (
        "keyword:moon",
        "The Moon orbits the Earth every 27.3 days and always shows us the same face, "
        "because its rotation is locked to its orbit.",
    ),
    (
        "vector:tea",
        "Green and black tea come from the same plant; black tea leaves are oxidised "
        "before drying, green tea leaves are heated to stop oxidation.",
    ),
    ("keyword:kittens", "Kittens sleep up to twenty hours a day while they grow."),
]


class HybridRetriever(BaseRetriever):
    """Stands in for an EnsembleRetriever over a keyword and a vector index."""

    def _get_relevant_documents(self, query: str, *, run_manager: Any) -> list[Document]:
        return [Document(page_content=t, metadata={"source": s}) for s, t in CANDIDATES]


class ReportPrinter(BaseCallbackHandler):
    """Receives the reranker's report, a LangChain custom event."""

    def __init__(self) -> None:
        self.report: dict[str, Any] = {}

    def on_custom_event(self, name: str, data: Any, *, run_id: UUID, **kwargs: Any) -> None:
        if name == CONTEXT_EVENT:
            self.report = data


def langchain_context(model: str, question: str, budget: int) -> None:
    """LangChain: a ContextualCompressionRetriever whose compressor fills a token budget."""
    reranker = LangChainRerank(
        model=model,
        top_n=None,  # the budget decides how many
        max_context_tokens=budget,  # counted with the reranker's tokenizer by default
        deduplicate=True,
        order="long_context",
    )
    retriever = ContextualCompressionRetriever(
        base_compressor=reranker, base_retriever=HybridRetriever()
    )
    printer = ReportPrinter()
    documents = retriever.invoke(question, config={"callbacks": [printer]})
    print(f"=== LangChain: max_context_tokens={budget}, long_context order ===")
    for n, doc in enumerate(documents, start=1):
        meta = doc.metadata
        merged = f" (+{meta['duplicates_merged']} merged)" if "duplicates_merged" in meta else ""
        print(
            f"  {n}. score={meta['relevance_score']:.4f} tokens={meta['context_tokens']} "
            f"{meta['source']}{merged}: {doc.page_content}"
        )
    print(f"report: {printer.report}")


def llama_index_context(model: str, question: str, budget: int) -> None:
    """LlamaIndex: the same options; tokens counted with Settings.tokenizer (tiktoken)."""
    nodes = [
        NodeWithScore(node=TextNode(text=t, metadata={"source": s}), score=1.0)
        for s, t in CANDIDATES
    ]
    reranker = LlamaIndexRerank(
        model=model, top_n=None, max_context_tokens=budget, deduplicate=True
    )
    kept = reranker.postprocess_nodes(nodes, query_str=question)
    print(f"=== LlamaIndex: max_context_tokens={budget}, relevance order ===")
    for n, node in enumerate(kept, start=1):
        meta = node.node.metadata
        merged = f" (+{meta['duplicates_merged']} merged)" if "duplicates_merged" in meta else ""
        print(
            f"  {n}. score={node.score:.4f} tokens={meta['context_tokens']} "
            f"{meta['source']}{merged}: {node.node.get_content()}"
        )
    used = sum(node.node.metadata["context_tokens"] for node in kept)
    print(f"tokens used: {used} of {budget}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run both adapters on the same candidates and print what reaches the context."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="hub id, local path or preset")
    parser.add_argument("--question", default=DEFAULT_QUESTION)
    parser.add_argument("--max-context-tokens", type=int, default=100)
    args = parser.parse_args(argv)
    print(f"Question: {args.question}")
    langchain_context(args.model, args.question, args.max_context_tokens)
    llama_index_context(args.model, args.question, args.max_context_tokens)
    return 0


if __name__ == "__main__":
    sys.exit(main())
