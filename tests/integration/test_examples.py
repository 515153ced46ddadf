"""Every ``examples/*.py`` runs, offline, on a tiny model and prints a consistent result.

Each example runs in a subprocess with ``--model <tiny model>`` and ``HF_HUB_OFFLINE=1``.
The tiny models know only their own small corpus, so instead of hoping they rank the
examples' documents sensibly, each check recomputes the ranking the example should print
(the same first stage, then the tiny scorer) and compares: same documents, same order,
same scores, best first, and the prompt holds exactly those documents.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from rerank_plugins import get_scorer

pytestmark = pytest.mark.integration

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# "  1. score=0.9876 bm25=3.59 shinkansen.txt#0  text" or "  1. score=0.9876 cats: text"
RANKED = re.compile(r"^\s+(\d+)\. score=(-?[\d.]+)(?: bm25=(-?[\d.]+))? (\S+?):?\s+(.*)$")


def run_example(name: str, model: Path, *args: str) -> str:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "PYTHONIOENCODING": "utf-8",
        "TOKENIZERS_PARALLELISM": "false",
    }
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--model", str(model), *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, f"{name} failed:\n{completed.stderr[-3000:]}"
    return completed.stdout


def load_module(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"example_{Path(name).stem}", EXAMPLES / name)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # pydantic resolves the module's annotations through it
    spec.loader.exec_module(module)
    return module


def ranked_lines(output: str) -> list[tuple[int, float, str, str]]:
    """(rank, score, source, text) of each printed result, in printed order."""
    rows = [RANKED.match(line) for line in output.splitlines()]
    return [(int(m[1]), float(m[2]), m[4], m[5]) for m in rows if m]


def section(output: str, title: str) -> str:
    """The text after the ``=== title ===`` line, up to the next ``===`` line."""
    match = re.search(rf"^=== {re.escape(title)}[^\n]*===\n(.*?)(?=^===|\Z)", output, re.M | re.S)
    assert match, f"no '=== {title} ===' section in:\n{output}"
    return match[1]


def check_ranking(
    printed: list[tuple[int, float, str, str]],
    expected: list[tuple[str, float]],
) -> None:
    """Printed (source, score) pairs equal the recomputed ones, best first."""
    assert [rank for rank, *_ in printed] == list(range(1, len(printed) + 1))
    assert [source for _, _, source, _ in printed] == [source for source, _ in expected]
    assert [score for _, score, _, _ in printed] == pytest.approx(
        [score for _, score in expected], abs=2e-4
    )
    scores = [score for _, score, _, _ in printed]
    assert scores == sorted(scores, reverse=True)


# ------------------------------------------------------------------ per example


def check_langchain_retriever_chain(tiny_bert: Path, tiny_xlmr: Path) -> None:
    question = "What makes a volcano erupt?"
    output = run_example("langchain_retriever_chain.py", tiny_bert, "--question", question)
    corpus = load_module("langchain_retriever_chain.py").CORPUS
    keys = list(corpus)
    results = get_scorer(str(tiny_bert)).rank(question, [corpus[k] for k in keys], top_n=3)
    printed = ranked_lines(output)
    check_ranking(printed, [(keys[r.index], r.score) for r in results])
    assert [text for *_, text in printed] == [corpus[keys[r.index]] for r in results]
    assert "ainvoke gives the same ranking: True" in output


def check_llama_index_query_engine(tiny_bert: Path, tiny_xlmr: Path) -> None:
    output = run_example("llama_index_query_engine.py", tiny_bert, "--top-n", "2")
    module = load_module("llama_index_query_engine.py")
    keys = list(module.CORPUS)
    texts = [module.CORPUS[k] for k in keys]
    results = get_scorer(str(tiny_bert)).rank(module.DEFAULT_QUESTION, texts, top_n=2)
    printed = ranked_lines(output)
    check_ranking(printed, [(keys[r.index], r.score) for r in results])
    prompt = section(output, "Answer")  # MockLLM echoes the prompt it was given
    positions = [prompt.index(texts[r.index]) for r in results]
    assert positions == sorted(positions), "the prompt lists the nodes best first"
    assert module.DEFAULT_QUESTION in prompt
    assert "retrieval_score" not in prompt
    left_out = set(range(len(texts))) - {r.index for r in results}
    assert not any(texts[i] in prompt for i in left_out)


def check_ja_langchain_rag(tiny_bert: Path, tiny_xlmr: Path) -> None:
    output = run_example("ja_langchain_rag.py", tiny_xlmr)
    module = load_module("ja_langchain_rag.py")
    chunks = module.split_documents(module.load_documents())
    retriever = module.JapaneseBM25Retriever.from_documents(chunks, k=10)
    candidates = retriever.invoke(module.DEFAULT_QUESTION)
    assert any(doc.metadata["source"] == "shinkansen.txt" for doc in candidates)
    results = get_scorer(str(tiny_xlmr)).rank(
        module.DEFAULT_QUESTION, [doc.page_content for doc in candidates], top_n=3
    )
    kept, used = [], 0
    for r in results:  # the context budget: 400 characters
        doc = candidates[r.index]
        if used + len(doc.page_content) <= 400:
            kept.append(doc)
            used += len(doc.page_content)
    scores = {id(candidates[r.index]): r.score for r in results}
    expected = [(f"{d.metadata['source']}#{d.metadata['chunk']}", scores[id(d)]) for d in kept]
    printed = ranked_lines(output)
    check_ranking(printed, expected)
    prompt = section(output, "Prompt")
    assert f"質問: {module.DEFAULT_QUESTION}" in prompt
    for n, doc in enumerate(kept, start=1):
        assert f"[{n}] ({doc.metadata['source']}) {' '.join(doc.page_content.split())}" in prompt
    assert section(output, "Answer").strip() == module.MOCK_ANSWER


def check_ja_llama_index_rag(tiny_bert: Path, tiny_xlmr: Path) -> None:
    from llama_index.core.schema import MetadataMode

    output = run_example("ja_llama_index_rag.py", tiny_xlmr, "--context-chars", "300")
    module = load_module("ja_llama_index_rag.py")
    nodes = module.JapaneseSentenceSplitter(chunk_size=120).get_nodes_from_documents(
        module.load_documents()
    )
    assert all(len(node.get_content()) <= 120 for node in nodes)
    candidates = module.JapaneseBM25Retriever(nodes, similarity_top_k=10).retrieve(
        module.DEFAULT_QUESTION
    )
    texts = [c.node.get_content(metadata_mode=MetadataMode.EMBED) for c in candidates]
    assert texts == [c.node.get_content() for c in candidates], "no file name in scored text"
    results = get_scorer(str(tiny_xlmr)).rank(module.DEFAULT_QUESTION, texts, top_n=3)
    kept, used = [], 0
    for r in results:
        if used + len(texts[r.index]) <= 300:
            kept.append(r)
            used += len(texts[r.index])
    expected = [(candidates[r.index].node.metadata["source"], r.score) for r in kept]
    printed = ranked_lines(output)
    check_ranking(printed, expected)
    prompt = section(output, "Prompt")
    positions = [prompt.index(texts[r.index]) for r in kept]
    assert positions == sorted(positions)
    assert module.DEFAULT_QUESTION in prompt
    assert "retrieval_score" not in prompt


def check_context_budget(tiny_bert: Path, tiny_xlmr: Path) -> None:
    from llama_index.core import Settings
    from llama_index.core.schema import MetadataMode, TextNode

    budget = 250
    output = run_example("context_budget.py", tiny_bert, "--max-context-tokens", str(budget))
    module = load_module("context_budget.py")
    sources = [source for source, _ in module.CANDIDATES]
    texts = [text for _, text in module.CANDIDATES]
    line = re.compile(r"^\s+(\d+)\. score=(-?[\d.]+) tokens=(\d+) (\S+?)(?: \(\+(\d+) merged\))?: ")
    scorer = get_scorer(str(tiny_bert))

    def printed(title: str) -> list[tuple[str, float, int]]:
        rows = [line.match(row) for row in section(output, title).splitlines()]
        merged = {m[4]: m[5] for m in rows if m}
        assert all(merged[s] == ("2" if s == "vector:cats-large" else None) for s in merged)
        return [(m[4], float(m[2]), int(m[3])) for m in rows if m]

    # LangChain: the scorer's own rank with the same options gives the same layout.
    expected = scorer.rank(
        module.DEFAULT_QUESTION,
        texts,
        max_context_tokens=budget,
        deduplicate=True,
        order="long_context",
    )
    got = printed("LangChain")
    assert [(s, t) for s, _, t in got] == [(sources[r.index], r.tokens) for r in expected]
    assert [score for _, score, _ in got] == pytest.approx([r.score for r in expected], abs=2e-4)
    # "keyword:cats" and its spaced, upper-case copy merge into the larger vector chunk.
    assert "'duplicates': 2, 'near_duplicates': 1" in section(output, "LangChain")

    # LlamaIndex: scored on the EMBED text, counted on the LLM text with Settings.tokenizer,
    # duplicates on the node text; then the budget, skipping what does not fit.
    nodes = [TextNode(text=t, metadata={"source": s}) for s, t in module.CANDIDATES]
    unique = [i for i in range(len(texts)) if sources[i] not in ("keyword:cats", "vector:cats")]
    scores = scorer.score(
        module.DEFAULT_QUESTION, [nodes[i].get_content(MetadataMode.EMBED) for i in unique]
    )
    kept, used = [], 0
    for score, i in sorted(zip(scores, unique, strict=True), key=lambda pair: -pair[0]):
        tokens = len(Settings.tokenizer(nodes[i].get_content(MetadataMode.LLM)))
        if used + tokens <= budget:
            kept.append((sources[i], score, tokens))
            used += tokens
    got = printed("LlamaIndex")
    assert [(s, t) for s, _, t in got] == [(s, t) for s, _, t in kept]
    assert [score for _, score, _ in got] == pytest.approx([sc for _, sc, _ in kept], abs=2e-4)
    assert f"tokens used: {used} of {budget}" in output
    assert len(kept) > 1


CHECKS: dict[str, Callable[[Path, Path], None]] = {
    "context_budget.py": check_context_budget,
    "langchain_retriever_chain.py": check_langchain_retriever_chain,
    "llama_index_query_engine.py": check_llama_index_query_engine,
    "ja_langchain_rag.py": check_ja_langchain_rag,
    "ja_llama_index_rag.py": check_ja_llama_index_rag,
}


def test_every_example_has_a_smoke_test() -> None:
    assert sorted(path.name for path in EXAMPLES.glob("*.py")) == sorted(CHECKS)


@pytest.mark.parametrize("name", sorted(CHECKS))
def test_example_runs_offline_on_a_tiny_model(name: str, tiny_bert: Path, tiny_xlmr: Path) -> None:
    CHECKS[name](tiny_bert, tiny_xlmr)


def test_japanese_corpus_is_utf8_text_with_sentence_ends() -> None:
    files = sorted((EXAMPLES / "data" / "ja_corpus").glob("*.txt"))
    assert len(files) >= 8
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert text.count("。") >= 3, path.name
