"""Token counters for the context budget: callables, Hugging Face tokenizers, tiktoken."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rerank_plugins import MissingDependencyError, _optional, _tokens
from rerank_plugins._tokens import length_function

JA_TEXT = "東京は日本の首都です。ﾃｽﾄ用の半角カナも含みます。"


@pytest.fixture(autouse=True)
def _fresh_caches() -> None:
    _tokens._tiktoken_counter.cache_clear()
    _tokens._hf_counter.cache_clear()


def test_callable_is_used_as_is() -> None:
    def count(text: str) -> int:
        return len(text)

    assert length_function(count) is count


@pytest.mark.parametrize("fixture", ["tiny_bert", "tiny_xlmr"])
@pytest.mark.parametrize("text", ["a cross-encoder reads both texts", JA_TEXT], ids=["en", "ja"])
def test_hugging_face_tokenizer_path_counts_without_special_tokens(
    fixture: str, text: str, request: pytest.FixtureRequest
) -> None:
    from transformers import AutoTokenizer

    path = str(request.getfixturevalue(fixture))
    count = length_function(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    expected = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert count(text) == len(expected) > 0
    long = " ".join([text] * 100)
    assert count(long) == len(tokenizer(long, add_special_tokens=False)["input_ids"]) > 512


def test_unknown_name_names_both_kinds() -> None:
    with pytest.raises(ValueError, match=r"^length_function='no/such-tokenizer' is neither a "):
        length_function("no/such-tokenizer")


@pytest.mark.parametrize("bad", ["", "  ", 3, None], ids=repr)
def test_bad_spec_type(bad: object) -> None:
    with pytest.raises(TypeError, match=r"^tokenizer must be a callable \(str -> int\)"):
        length_function(bad, name="tokenizer")  # type: ignore[arg-type]


def test_tiktoken_name_without_tiktoken_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    real = _optional.is_available
    monkeypatch.setattr(_optional, "is_available", lambda m: m != "tiktoken" and real(m))
    message = (
        "Counting tokens with tiktoken needs 'tiktoken', which is not installed. "
        'Install it with: pip install "rerank-plugins[tokens]"'
    )
    with pytest.raises(MissingDependencyError, match=f"^{re.escape(message)}$"):
        length_function("cl100k_base")


def test_tiktoken_from_a_local_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    """tiktoken downloads BPE files; LlamaIndex ships cl100k_base, so use that copy offline."""
    pytest.importorskip("tiktoken")
    import llama_index.core

    cache = Path(llama_index.core.__file__).parent / "_static" / "tiktoken_cache"
    if not any(cache.glob("*")):
        pytest.skip("this llama-index-core ships no tiktoken cache")
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    count = length_function("cl100k_base")
    assert count("hello world") == 2
    assert count("<|endoftext|>") > 1, "special-token text counts as ordinary text"
    assert count(JA_TEXT) > 10
