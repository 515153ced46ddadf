"""Rerank a LangChain retriever's results with a local cross-encoder.

A ``ContextualCompressionRetriever`` wraps a first-stage retriever (here an in-memory
vector store; the fake embedding stands in for a real one such as
``HuggingFaceEmbeddings``) and passes its candidates through ``CrossEncoderRerank``,
which keeps the best ``top_n`` with their score in ``metadata["relevance_score"]``.

Run::

    python examples/langchain_retriever_chain.py
    python examples/langchain_retriever_chain.py --model ./my-model --question "..." --top-n 2
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.vectorstores import InMemoryVectorStore

from rerank_plugins.errors import RerankPluginsError
from rerank_plugins.langchain import CrossEncoderRerank

DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L6-v2"
DEFAULT_QUESTION = "How many hours a day does a cat sleep?"

CORPUS = {
    "cats": (
        "Cats are crepuscular: they are most active at dawn and dusk. An adult cat sleeps "
        "twelve to sixteen hours a day, and a kitten even more."
    ),
    "volcanoes": (
        "A volcano erupts when pressure from gas-rich magma beneath the crust forces it up "
        "through vents. Lava flows, ash clouds and volcanic bombs can follow."
    ),
    "trains": (
        "Europe's high-speed trains run at up to 320 km/h on dedicated lines, making rail "
        "faster than flying between many city centres."
    ),
    "bread": (
        "To bake bread you need flour, water, salt and yeast. Kneading builds gluten, and "
        "a long, cool rise gives the loaf more flavour."
    ),
    "football": (
        "A football match has two halves of forty-five minutes. Each team fields eleven "
        "players, and only the goalkeeper may handle the ball inside the penalty area."
    ),
    "coffee": (
        "Coffee beans are the roasted seeds of the coffee cherry. Light roasts keep more "
        "acidity, while dark roasts taste bitter and smoky."
    ),
    "moon": (
        "The Moon orbits the Earth every 27.3 days and always shows us the same face, "
        "because its rotation is locked to its orbit."
    ),
    "tea": (
        "Green and black tea come from the same plant; black tea leaves are oxidised "
        "before drying, green tea leaves are heated to stop oxidation."
    ),
}


def build_retriever(model: str, top_n: int) -> ContextualCompressionRetriever:
    """A vector-store retriever whose candidates are reranked by a cross-encoder."""
    documents = [Document(page_content=text, metadata={"source": k}) for k, text in CORPUS.items()]
    store = InMemoryVectorStore.from_documents(documents, DeterministicFakeEmbedding(size=64))
    # Fetch generously in the first stage; the reranker decides what the LLM sees.
    base = store.as_retriever(search_kwargs={"k": 20})
    return ContextualCompressionRetriever(
        base_compressor=CrossEncoderRerank(model=model, top_n=top_n),
        base_retriever=base,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Retrieve and rerank for one question; print the results, best first."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="hub id, local path or preset")
    parser.add_argument("--question", default=DEFAULT_QUESTION)
    parser.add_argument("--top-n", type=int, default=3)
    args = parser.parse_args(argv)

    retriever = build_retriever(args.model, args.top_n)
    results = retriever.invoke(args.question)
    # The async path is the same call with ainvoke; it does not block the event loop.
    async_results = asyncio.run(retriever.ainvoke(args.question))
    same = [d.page_content for d in async_results] == [d.page_content for d in results]

    print(f"Question: {args.question}")
    for n, doc in enumerate(results, start=1):
        score = doc.metadata["relevance_score"]
        print(f"  {n}. score={score:.4f} {doc.metadata['source']}: {doc.page_content}")
    print(f"ainvoke gives the same ranking: {same}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RerankPluginsError as err:  # e.g. offline without the model: one line, exit 1
        sys.exit(f"error: {err}")
