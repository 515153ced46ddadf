"""Japanese RAG with LlamaIndex: BM25 first stage, cross-encoder rerank, context budget.

The pipeline, over the small Japanese corpus in ``examples/data/ja_corpus/``:

1. ``JapaneseSentenceSplitter`` (a LlamaIndex ``TextSplitter``) cuts each document at
   Japanese sentence ends (``。！？``) into chunks of at most ``--chunk-chars`` characters.
   LlamaIndex's ``SentenceSplitter`` counts tokens with an English tokenizer and cuts
   Japanese chunks in mid-sentence, so it is not used here.
2. First stage: ``JapaneseBM25Retriever`` below, a ``BaseRetriever`` over rerank-plugins'
   own BM25 index, which splits Japanese with MeCab (``fugashi`` + ``unidic-lite``, from
   ``pip install "rerank-plugins[ja]"``) and falls back to character bigrams without them.
   We do not use ``BM25Retriever`` from ``llama-index-retrievers-bm25``: it silently
   ignores its ``tokenizer`` argument (deprecated there) and uses bm25s' English-oriented
   tokenizer (runs of word characters, an English stemmer), so a Japanese sentence becomes
   one "word" and BM25 finds almost nothing.
3. ``CrossEncoderRerank`` reranks the candidates (a ``node_postprocessor``).
4. ``ContextBudget`` keeps the best chunks that fit a budget in characters.
5. A ``RetrieverQueryEngine`` builds the prompt and calls the LLM: ``MockLLM`` by default
   (it echoes its prompt), or ``--llm openai:gpt-4o-mini`` with
   ``pip install llama-index-llms-openai`` and ``OPENAI_API_KEY``. The prompt the LLM
   received is printed, caught with a LlamaIndex instrumentation event handler.

Run::

    python examples/ja_llama_index_rag.py                    # the ja-xsmall-v1 preset
    python examples/ja_llama_index_rag.py --model ./my-model --question "札幌の冬の祭りは？"
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import llama_index.core.instrumentation as instrument
from llama_index.core import Document, PromptTemplate
from llama_index.core.bridge.pydantic import Field
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.llm import LLMChatStartEvent, LLMCompletionStartEvent
from llama_index.core.llms import LLM, MockLLM
from llama_index.core.node_parser.interface import TextSplitter
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import BaseNode, NodeWithScore, QueryBundle

from rerank_plugins import split_sentences
from rerank_plugins.errors import RerankPluginsError
from rerank_plugins.eval.bm25 import BM25Index
from rerank_plugins.llama_index import CrossEncoderRerank

CORPUS_DIR = Path(__file__).parent / "data" / "ja_corpus"
DEFAULT_MODEL = "ja-xsmall-v1"  # hotchpotch/japanese-reranker-cross-encoder-xsmall-v1
DEFAULT_QUESTION = "新幹線はどのくらい速いですか？"

QA_TEMPLATE = PromptTemplate(
    "次の資料だけを使って、質問に日本語で答えてください。"
    "資料に答えがない場合は「資料には書かれていません」と答えてください。\n\n"
    "資料:\n{context_str}\n\n"
    "質問: {query_str}\n"
    "回答:"
)


class JapaneseSentenceSplitter(TextSplitter):
    """Group whole sentences into chunks of at most ``chunk_size`` characters.

    A sentence longer than ``chunk_size`` becomes a chunk of its own, cut every
    ``chunk_size`` characters.
    """

    chunk_size: int = Field(default=120, gt=0, description="Most characters per chunk.")

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex serialisation."""
        return "JapaneseSentenceSplitter"

    def split_text(self, text: str) -> list[str]:
        """Split ``text`` into chunks of whole sentences; line breaks become one newline."""
        chunks: list[str] = []
        current = ""
        for start, end in split_sentences(text):
            piece = text[start:end]
            sentence = piece.strip()
            if not sentence:
                continue
            if current and len(current) + len(sentence) > self.chunk_size:
                chunks.append(current.strip())
                current = ""
            while len(sentence) > self.chunk_size:
                chunks.append(sentence[: self.chunk_size])
                sentence = sentence[self.chunk_size :]
            current += sentence + ("\n" if "\n" in piece else "")
        if current.strip():
            chunks.append(current.strip())
        return chunks


class JapaneseBM25Retriever(BaseRetriever):
    """BM25 over Japanese words (MeCab via fugashi when installed, else character bigrams)."""

    def __init__(self, nodes: Sequence[BaseNode], similarity_top_k: int = 10) -> None:
        self._nodes = list(nodes)
        self._index = BM25Index([node.get_content() for node in self._nodes], tokenizer="auto")
        self.similarity_top_k = similarity_top_k
        super().__init__()

    @property
    def tokenizer_name(self) -> str:
        """The BM25 tokenizer in use: ``fugashi`` or ``bigram``."""
        return self._index.tokenizer_name

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self._index.search(query_bundle.query_str, top_k=self.similarity_top_k)
        return [NodeWithScore(node=self._nodes[i], score=score) for i, score in hits]


class ContextBudget(BaseNodePostprocessor):
    """Keep nodes in order (best first) while their text fits ``max_chars`` in total.

    A node that does not fit is skipped and the next, shorter one may still fit.
    """

    max_chars: int = Field(default=400, gt=0, description="Most characters of context.")

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex serialisation."""
        return "ContextBudget"

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        kept: list[NodeWithScore] = []
        used = 0
        for node in nodes:
            size = len(node.node.get_content())
            if used + size <= self.max_chars:
                kept.append(node)
                used += size
        return kept


class PromptRecorder(BaseEventHandler):
    """Keep the prompt of every LLM call (LlamaIndex instrumentation events)."""

    prompts: list[str] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        """Name used by LlamaIndex serialisation."""
        return "PromptRecorder"

    def handle(self, event: BaseEvent, **kwargs: Any) -> None:
        """Record completion prompts and chat messages."""
        if isinstance(event, LLMCompletionStartEvent):
            self.prompts.append(event.prompt)
        elif isinstance(event, LLMChatStartEvent):
            self.prompts.append("\n".join(str(message) for message in event.messages))


def load_documents(directory: Path = CORPUS_DIR) -> list[Document]:
    """Read every ``*.txt`` file of ``directory`` as one document."""
    return [
        Document(
            text=path.read_text(encoding="utf-8"),
            metadata={"source": path.name},
            # The reranker scores the text without the file name; the LLM sees the name.
            excluded_embed_metadata_keys=["source"],
        )
        for path in sorted(directory.glob("*.txt"))
    ]


def make_llm(spec: str) -> LLM:
    """``mock`` gives MockLLM (echoes the prompt); ``openai:MODEL`` gives OpenAI(MODEL)."""
    if spec == "mock":
        return MockLLM()
    provider, _, model = spec.partition(":")
    if provider != "openai" or not model:
        msg = f"--llm must be 'mock' or 'openai:MODEL', got {spec!r}."
        raise SystemExit(msg)
    try:
        from llama_index.llms.openai import OpenAI
    except ImportError as err:
        msg = "--llm openai:... needs: pip install llama-index-llms-openai"
        raise SystemExit(msg) from err
    return OpenAI(model=model)


def main(argv: Sequence[str] | None = None) -> int:
    """Answer one question over the Japanese corpus and print each step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="reranker: preset, hub id or path")
    parser.add_argument("--question", default=DEFAULT_QUESTION)
    parser.add_argument("--candidates", type=int, default=10, help="BM25 candidates to rerank")
    parser.add_argument("--top-n", type=int, default=3, help="most chunks in the prompt")
    parser.add_argument("--context-chars", type=int, default=400, help="context budget")
    parser.add_argument("--chunk-chars", type=int, default=120, help="most characters a chunk")
    parser.add_argument("--llm", default="mock", help="mock or openai:MODEL")
    args = parser.parse_args(argv)

    splitter = JapaneseSentenceSplitter(chunk_size=args.chunk_chars)
    nodes = splitter.get_nodes_from_documents(load_documents())
    retriever = JapaneseBM25Retriever(nodes, similarity_top_k=args.candidates)
    engine = RetrieverQueryEngine.from_args(
        retriever,
        llm=make_llm(args.llm),
        node_postprocessors=[
            CrossEncoderRerank(model=args.model, top_n=args.top_n),
            ContextBudget(max_chars=args.context_chars),
        ],
        text_qa_template=QA_TEMPLATE,
    )
    recorder = PromptRecorder()
    instrument.get_dispatcher().add_event_handler(recorder)

    response = engine.query(args.question)

    print(f"質問: {args.question}")
    print(f"BM25 ({retriever.tokenizer_name}): {args.candidates} candidates of {len(nodes)} chunks")
    print(f"Reranked (top {args.top_n}, within {args.context_chars} characters):")
    for n, scored in enumerate(response.source_nodes, start=1):
        meta = scored.node.metadata
        print(
            f"  {n}. score={scored.score:.4f} bm25={meta['retrieval_score']:.2f} "
            f"{meta['source']}  {' '.join(scored.node.get_content().split())}"
        )
    print("=== Prompt ===")
    print(recorder.prompts[-1] if recorder.prompts else "(the LLM was not called)")
    print("=== Answer ===")
    answer = str(response)
    print("(MockLLM echoes the prompt above.)" if args.llm == "mock" else answer)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RerankPluginsError as err:  # e.g. offline without the model: one line, exit 1
        sys.exit(f"error: {err}")
