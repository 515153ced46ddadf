"""Japanese RAG with LangChain: BM25 first stage, cross-encoder rerank, context budget.

The pipeline, over the small Japanese corpus in ``examples/data/ja_corpus/``:

1. Split each document at Japanese sentence ends with LangChain's
   ``RecursiveCharacterTextSplitter`` (separators ``\\n\\n``, ``\\n``, ``。``, ``！``,
   ``？``, ``、``; the sentence end stays with its sentence).
2. First stage: BM25 over Japanese words. ``JapaneseBM25Retriever`` below wraps
   rerank-plugins' own BM25 index, which splits Japanese with MeCab (``fugashi`` +
   ``unidic-lite``, installed by ``pip install "rerank-plugins[ja]"``) and falls back to
   character bigrams without them. (LangChain's ``BM25Retriever`` from
   ``langchain-community`` works too if you pass a Japanese ``preprocess_func`` such as
   a MeCab word splitter; its default whitespace split makes a Japanese sentence one
   long "word".)
3. Rerank the candidates with ``CrossEncoderRerank`` (a Japanese cross-encoder).
4. Keep the best chunks that fit a context budget in characters, and build the prompt.
5. Answer with an LLM: a mock by default (``FakeListLLM``), or any chat model LangChain's
   ``init_chat_model`` knows, e.g. ``--llm openai:gpt-4o-mini`` (needs ``pip install
   langchain langchain-openai`` and ``OPENAI_API_KEY``).

Run::

    python examples/ja_langchain_rag.py                      # the ja-xsmall-v1 preset
    python examples/ja_langchain_rag.py --model ./my-model --question "札幌の冬の祭りは？"
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseLanguageModel
from langchain_core.language_models.fake import FakeListLLM
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import PromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_text_splitters import RecursiveCharacterTextSplitter
from pydantic import ConfigDict

from rerank_plugins.errors import RerankPluginsError
from rerank_plugins.eval.bm25 import BM25Index
from rerank_plugins.langchain import CrossEncoderRerank

CORPUS_DIR = Path(__file__).parent / "data" / "ja_corpus"
DEFAULT_MODEL = "ja-xsmall-v1"  # hotchpotch/japanese-reranker-cross-encoder-xsmall-v1
DEFAULT_QUESTION = "新幹線はどのくらい速いですか？"
MOCK_ANSWER = "（モックLLMの回答です。--llm で実際のモデルを指定できます）"
JAPANESE_SEPARATORS = ["\n\n", "\n", "。", "！", "？", "、", ""]

PROMPT = PromptTemplate.from_template(
    "次の資料だけを使って、質問に日本語で答えてください。"
    "資料に答えがない場合は「資料には書かれていません」と答えてください。\n\n"
    "資料:\n{context}\n\n"
    "質問: {question}\n"
    "回答:"
)


def load_documents(directory: Path = CORPUS_DIR) -> list[Document]:
    """Read every ``*.txt`` file of ``directory`` as one document."""
    return [
        Document(page_content=path.read_text(encoding="utf-8"), metadata={"source": path.name})
        for path in sorted(directory.glob("*.txt"))
    ]


def split_documents(documents: Sequence[Document], chunk_size: int = 120) -> list[Document]:
    """Cut documents into chunks of at most ``chunk_size`` characters at sentence ends."""
    splitter = RecursiveCharacterTextSplitter(
        separators=JAPANESE_SEPARATORS,
        keep_separator="end",
        chunk_size=chunk_size,
        chunk_overlap=0,
    )
    chunks = splitter.split_documents(documents)
    counters: dict[str, int] = {}
    for chunk in chunks:
        source = chunk.metadata["source"]
        chunk.metadata["chunk"] = counters[source] = counters.get(source, -1) + 1
    return chunks


class JapaneseBM25Retriever(BaseRetriever):
    """BM25 over Japanese words (MeCab via fugashi when installed, else character bigrams)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    documents: list[Document]
    index: BM25Index
    k: int = 10

    @classmethod
    def from_documents(cls, documents: Sequence[Document], k: int = 10) -> JapaneseBM25Retriever:
        """Index ``documents`` (their ``page_content``) for BM25 search."""
        index = BM25Index([doc.page_content for doc in documents], tokenizer="auto")
        return cls(documents=list(documents), index=index, k=k)

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        hits = self.index.search(query, top_k=self.k)
        return [
            self.documents[i].model_copy(
                update={"metadata": {**self.documents[i].metadata, "bm25_score": score}}
            )
            for i, score in hits
        ]


def fit_budget(documents: Sequence[Document], max_chars: int) -> list[Document]:
    """Keep documents in order (best first) while their text fits ``max_chars`` in total.

    A document that does not fit is skipped and the next, shorter one may still fit.
    """
    kept: list[Document] = []
    used = 0
    for doc in documents:
        if used + len(doc.page_content) <= max_chars:
            kept.append(doc)
            used += len(doc.page_content)
    return kept


def format_context(documents: Sequence[Document]) -> str:
    """Number the chunks and name their source, one chunk per line."""
    return "\n".join(
        f"[{n}] ({doc.metadata['source']}) {' '.join(doc.page_content.split())}"
        for n, doc in enumerate(documents, start=1)
    )


def make_llm(spec: str) -> BaseLanguageModel[Any]:
    """``mock`` gives a FakeListLLM; ``provider:model`` goes to LangChain's init_chat_model."""
    if spec == "mock":
        return FakeListLLM(
            responses=["（モックLLMの回答です。--llm で実際のモデルを指定できます）"]
        )
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as err:
        msg = f"--llm {spec} needs init_chat_model: pip install langchain langchain-<provider>"
        raise SystemExit(msg) from err
    chat_model: BaseLanguageModel[Any] = init_chat_model(spec)
    return chat_model


def main(argv: Sequence[str] | None = None) -> int:
    """Answer one question over the Japanese corpus and print each step."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL, help="reranker: preset, hub id or path")
    parser.add_argument("--question", default=DEFAULT_QUESTION)
    parser.add_argument("--candidates", type=int, default=10, help="BM25 candidates to rerank")
    parser.add_argument("--top-n", type=int, default=3, help="most chunks in the prompt")
    parser.add_argument("--context-chars", type=int, default=400, help="context budget")
    parser.add_argument("--llm", default="mock", help="mock, or provider:model (init_chat_model)")
    args = parser.parse_args(argv)

    chunks = split_documents(load_documents())
    retriever = JapaneseBM25Retriever.from_documents(chunks, k=args.candidates)
    reranker = CrossEncoderRerank(model=args.model, top_n=args.top_n)

    candidates = retriever.invoke(args.question)
    reranked = reranker.compress_documents(candidates, args.question)
    context = fit_budget(reranked, args.context_chars)

    print(f"質問: {args.question}")
    print(f"BM25 ({retriever.index.tokenizer_name}): {len(candidates)} of {len(chunks)} chunks")
    print(f"Reranked (top {args.top_n}, within {args.context_chars} characters):")
    for n, doc in enumerate(context, start=1):
        meta = doc.metadata
        text = " ".join(doc.page_content.split())
        print(
            f"  {n}. score={meta['relevance_score']:.4f} bm25={meta['bm25_score']:.2f} "
            f"{meta['source']}#{meta['chunk']}  {text}"
        )

    prompt = PROMPT.invoke({"context": format_context(context), "question": args.question})
    print("=== Prompt ===")
    print(prompt.to_string())
    answer = (make_llm(args.llm) | StrOutputParser()).invoke(prompt)
    print("=== Answer ===")
    print(answer)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except RerankPluginsError as err:  # e.g. offline without the model: one line, exit 1
        sys.exit(f"error: {err}")
