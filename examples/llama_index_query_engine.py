"""Rerank a LlamaIndex query engine's nodes with a local cross-encoder.

``CrossEncoderRerank`` is a ``node_postprocessor``: the index retrieves
``similarity_top_k`` candidates, the cross-encoder keeps the best ``top_n``, and only
those reach the LLM. ``MockEmbedding`` and ``MockLLM`` stand in for real models so the
example runs offline (``MockLLM`` echoes its prompt); pass your own ``embed_model`` and
``llm`` in a real application.

Run::

    python examples/llama_index_query_engine.py
    python examples/llama_index_query_engine.py --model ./my-model --question "..." --top-n 2
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from llama_index.core import VectorStoreIndex
from llama_index.core.embeddings import MockEmbedding
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import BaseQueryEngine
from llama_index.core.schema import TextNode

from rerank_plugins.errors import RerankPluginsError
from rerank_plugins.llama_index import CrossEncoderRerank

DEFAULT_MODEL = "cross-encoder/ms-marco-MiniLM-L6-v2"
DEFAULT_QUESTION = "What makes a volcano erupt?"

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
}


def build_query_engine(model: str, top_n: int) -> BaseQueryEngine:
    """A vector index whose retrieved nodes are reranked before the LLM sees them."""
    nodes = [
        # The reranker scores text plus "embed" metadata: keep the source name out of it,
        # and the first-stage score it adds out of the prompt.
        TextNode(
            text=text,
            metadata={"source": key},
            excluded_embed_metadata_keys=["source"],
        )
        for key, text in CORPUS.items()
    ]
    index = VectorStoreIndex(nodes=nodes, embed_model=MockEmbedding(embed_dim=8))
    return index.as_query_engine(
        llm=MockLLM(),
        similarity_top_k=len(nodes),
        node_postprocessors=[CrossEncoderRerank(model=model, top_n=top_n)],
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Query once; print the reranked source nodes and the (mock) answer."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="hub id, local path or preset")
    parser.add_argument("--question", default=DEFAULT_QUESTION)
    parser.add_argument("--top-n", type=int, default=3)
    args = parser.parse_args(argv)

    engine = build_query_engine(args.model, args.top_n)
    response = engine.query(args.question)

    print(f"Question: {args.question}")
    for n, scored in enumerate(response.source_nodes, start=1):
        print(f"  {n}. score={scored.score:.4f} {scored.node.metadata['source']}: {scored.text}")
    print("=== Answer (MockLLM echoes its prompt) ===")
    print(response)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RerankPluginsError as err:  # e.g. offline without the model: one line, exit 1
        sys.exit(f"error: {err}")
