"""Both adapters take get_scorer's options as fields, reject unknown keywords and bad thresholds."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import pytest

from rerank_plugins import CrossEncoderScorer, get_scorer
from rerank_plugins._adapter_support import SCORER_ONLY_OPTIONS, ContextFields, ScorerOptions
from rerank_plugins.langchain import CrossEncoderRerank as LangChainRerank
from rerank_plugins.llama_index import CrossEncoderRerank as LlamaIndexRerank

pytestmark = pytest.mark.integration

ADAPTERS = pytest.mark.parametrize(
    "adapter", [LangChainRerank, LlamaIndexRerank], ids=["langchain", "llama_index"]
)


def _scorer_keywords() -> dict[str, inspect.Parameter]:
    signature = inspect.signature(CrossEncoderScorer.__init__)
    return {
        name: parameter
        for name, parameter in signature.parameters.items()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }


def test_option_fields_match_the_scorer_signature() -> None:
    """The adapters' option fields and get_scorer's options cannot drift apart."""
    keywords = _scorer_keywords()
    for name, field in ScorerOptions.model_fields.items():
        assert name in keywords, f"{name} is not an option of get_scorer"
        assert field.default == keywords[name].default, f"{name}'s default differs"
    missing = set(keywords) - set(ScorerOptions.model_fields) - SCORER_ONLY_OPTIONS
    assert not missing, f"options of get_scorer that are no adapter field: {sorted(missing)}"


def test_context_fields_match_the_rank_keywords() -> None:
    """Both adapters take rank()'s context options from one mixin, with rank()'s defaults.

    The adapters used to declare these fields (and their checks) twice, free to drift apart.
    ``top_n`` alone differs on purpose: an adapter keeps 3 by default, ``rank`` keeps all.
    """
    rank = inspect.signature(CrossEncoderScorer.rank).parameters
    assert issubclass(LangChainRerank, ContextFields)
    assert issubclass(LlamaIndexRerank, ContextFields)
    for name, field in ContextFields.model_fields.items():
        assert rank[name].kind is inspect.Parameter.KEYWORD_ONLY, name
        expected = 3 if name == "top_n" else rank[name].default
        assert field.default == expected, f"{name}'s default differs"
    assert list(ContextFields.model_fields) == [
        "top_n",
        "score_threshold",
        "max_context_tokens",
        "deduplicate",
        "near_duplicate_threshold",
        "order",
    ]


@ADAPTERS
def test_options_given_as_fields_reach_the_scorer(adapter: Any, tiny_bert: Path) -> None:
    """Regression: device= and max_length= were dropped silently (pydantic ignored them)."""
    reranker = adapter(model=str(tiny_bert), device="cpu", max_length=16, backend="torch")
    assert reranker.scorer.device == "cpu"
    assert reranker.scorer.max_length == 16
    assert reranker.scorer.backend == "torch"
    assert reranker.scorer is get_scorer(
        str(tiny_bert), device="cpu", max_length=16, backend="torch"
    )


@ADAPTERS
def test_options_in_fields_and_scorer_options_combine(adapter: Any, tiny_bert: Path) -> None:
    reranker = adapter(
        model=str(tiny_bert), max_length=24, scorer_options={"device": "cpu", "max_wait_ms": 1.0}
    )
    assert reranker.scorer is get_scorer(
        str(tiny_bert), max_length=24, device="cpu", max_wait_ms=1.0
    )


@ADAPTERS
def test_unset_options_are_not_passed(adapter: Any, tiny_bert: Path) -> None:
    """Only options set explicitly reach get_scorer, so presets keep their own defaults."""
    assert adapter(model=str(tiny_bert)).scorer is get_scorer(str(tiny_bert))


@ADAPTERS
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"devcie": "cpu"},
            r"got an unknown keyword argument 'devcie'\. Did you mean 'device'\? Other "
            r"get_scorer options go in scorer_options=",
        ),
        ({"k": 3}, r"got an unknown keyword argument 'k'\. Other get_scorer options"),
        (
            {"max_wait_ms": 5},
            r"got an unknown keyword argument 'max_wait_ms'\. Other get_scorer options go in "
            r"scorer_options=",
        ),
        (
            {"device": "cpu", "scorer_options": {"device": "cuda"}},
            r"device was given twice: device='cpu' and scorer_options=\{'device': 'cuda'\}\. "
            r"Pass it once\.",
        ),
    ],
    ids=["typo", "unknown", "scorer-only-option", "twice"],
)
def test_bad_keywords_raise(adapter: Any, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        adapter(model="never-loaded", **kwargs)


@ADAPTERS
def test_options_with_a_ready_scorer_raise(adapter: Any, tiny_bert: Path) -> None:
    scorer = get_scorer(str(tiny_bert))
    with pytest.raises(
        ValueError,
        match=r"Scorer options \(device='cpu', max_length=16\) only apply when the adapter "
        r"loads model=\.\.\.; configure the scorer you pass instead",
    ):
        adapter(scorer=scorer, device="cpu", max_length=16)


@ADAPTERS
def test_the_token_stays_out_of_errors_and_dumps(adapter: Any, tiny_bert: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown keyword argument 'devcie'") as error:
        adapter(model="never-loaded", token="hf_secret", devcie="cpu")
    assert "hf_secret" not in str(error.value)
    reranker = adapter(model=str(tiny_bert), token="hf_secret", backend="torch")
    assert "token" not in reranker.model_dump()
    assert "hf_secret" not in repr(reranker)


@ADAPTERS
@pytest.mark.parametrize(
    "threshold", [float("nan"), float("inf"), float("-inf")], ids=["nan", "inf", "-inf"]
)
def test_non_finite_score_threshold_raises(adapter: Any, threshold: float) -> None:
    """Regression: score_threshold=nan was accepted and every query returned nothing."""
    with pytest.raises(ValueError, match=r"score_threshold must be a finite number or None, got "):
        adapter(model="never-loaded", score_threshold=threshold)


def test_a_llama_index_round_trip_keeps_the_shared_scorer(tiny_bert: Path) -> None:
    """to_dict/from_dict sets every field; defaults must not reach get_scorer (or presets)."""
    reranker = LlamaIndexRerank(model=str(tiny_bert), top_n=2)
    copy = LlamaIndexRerank.from_dict(reranker.to_dict())
    assert copy.scorer is reranker.scorer is get_scorer(str(tiny_bert))
    assert copy.top_n == 2


@ADAPTERS
@pytest.mark.parametrize(
    ("top_n", "expected"), [(1, 1), (3, 3), (4, 3), (None, 3)], ids=["1", "len", "len+1", "all"]
)
def test_top_n_above_the_number_of_inputs_keeps_all(
    adapter: Any, tiny_bert: Path, top_n: int | None, expected: int
) -> None:
    texts = ["cats purr", "lava flows", "trains run"]
    reranker = adapter(model=str(tiny_bert), top_n=top_n)
    if adapter is LangChainRerank:
        from langchain_core.documents import Document

        kept = reranker.compress_documents([Document(page_content=t) for t in texts], "cats")
    else:
        from llama_index.core.schema import NodeWithScore, TextNode

        nodes = [NodeWithScore(node=TextNode(text=t), score=0.0) for t in texts]
        kept = reranker.postprocess_nodes(nodes, query_str="cats")
    assert len(kept) == expected
