"""Japanese support: MeCab and sentencepiece tokenizers, the [ja] extra, presets, long text.

The MeCab model (``tiny_ja_mecab_bert``, from this folder's conftest) stands in for
``japanese-reranker-cross-encoder-base-v1``/``large-v1``; ``tiny_xlmr`` (sentencepiece)
for ``xsmall-v1``/``small-v1``/``japanese-bge-reranker-v2-m3-v1``.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rerank_plugins import CrossEncoderScorer, get_scorer
from rerank_plugins._text import split_sentences
from rerank_plugins.cli import main as cli_main
from rerank_plugins.errors import MissingDependencyError
from rerank_plugins.presets import PRESETS, resolve_preset
from rerank_plugins.scorer import _registry
from rerank_plugins.scorer._registry import clear_scorers
from rerank_plugins.scorer._windows import passage_windows
from tests._tiny_models import JA_RANKING_CASES, TOPICS

JA_TOPICS = [topic for topic in TOPICS if topic.language == "ja"]
JA_PASSAGES = [p for topic in JA_TOPICS for p in topic.passages]
SEGMENT_INPUTS = ["input_ids", "token_type_ids", "attention_mask"]
CASE_IDS = [f"ja-case-{i}" for i in range(len(JA_RANKING_CASES))]


@pytest.fixture
def recording_registry(monkeypatch: pytest.MonkeyPatch) -> Any:
    """get_scorer builds RecordingScorer instead of loading a model; the cache starts empty."""
    clear_scorers()
    monkeypatch.setattr(_registry, "CrossEncoderScorer", RecordingScorer)
    yield
    clear_scorers()


def st_reference(path: Path, query: str, passages: list[str], *, segments: bool) -> np.ndarray:
    """sentence-transformers' scores; ``segments`` sends token_type_ids as transformers 4 did."""
    from sentence_transformers import CrossEncoder

    model = CrossEncoder(str(path), device="cpu")
    if segments:
        model.tokenizer.model_input_names = SEGMENT_INPUTS
    return model.predict([(query, p) for p in passages])


def off_topic(answer: str) -> str:
    """The passages of every other Japanese topic, as one text."""
    return "".join(p for topic in JA_TOPICS if answer not in topic.passages for p in topic.passages)


def first(scores: list[float]) -> int:
    return max(range(len(scores)), key=scores.__getitem__)


# ------------------------------------------------ (a) BERT with a MeCab tokenizer


def test_mecab_model_uses_bert_japanese_tokenizer(tiny_ja_mecab_bert: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_ja_mecab_bert))
    assert type(tokenizer).__name__ == "BertJapaneseTokenizer"
    assert tokenizer.word_tokenizer_type == "mecab"
    # MeCab words, not characters: 富士山 -> 富士 + 山, メートル stays whole.
    assert tokenizer.tokenize("富士山の高さは何メートルですか？") == [
        *("富士", "山", "の", "高", "さ", "は", "何", "メートル", "です", "か"),
        "?",
    ]


def test_mecab_scores_equal_sentence_transformers(tiny_ja_mecab_bert: Path) -> None:
    scorer = get_scorer(str(tiny_ja_mecab_bert), device="cpu")
    for query, passages, _ in JA_RANKING_CASES[:4]:
        ours = scorer.score(query, passages)
        reference = st_reference(tiny_ja_mecab_bert, query, passages, segments=True)
        np.testing.assert_allclose(ours, reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_mecab_model_gets_segment_ids(
    tiny_ja_mecab_bert: Path, backend: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: under transformers 5 BertJapaneseTokenizer stopped returning token_type_ids.

    transformers 5 dropped ``token_type_ids`` from the default ``model_input_names`` of
    Python tokenizers, so the passage was encoded as segment 0, unlike in training, and
    the scores of base-v1/large-v1 changed. The scorer sends segment ids to any model with
    a segment embedding, and the ONNX export takes them as an input.
    """
    monkeypatch.setenv("RERANK_PLUGINS_CACHE_DIR", str(tmp_path))
    scorer = CrossEncoderScorer(str(tiny_ja_mecab_bert), device="cpu", backend=backend)
    query, passages, _ = JA_RANKING_CASES[3]
    ours = np.array(scorer.score(query, passages))
    with_segments = st_reference(tiny_ja_mecab_bert, query, passages, segments=True)
    without_segments = st_reference(tiny_ja_mecab_bert, query, passages, segments=False)
    np.testing.assert_allclose(ours, with_segments, atol=1e-5, rtol=0)
    assert np.abs(ours - without_segments).max() > 1e-3, "segment ids must change the scores"


@pytest.mark.parametrize(("query", "passages", "relevant"), JA_RANKING_CASES, ids=CASE_IDS)
def test_mecab_model_ranks_japanese_cases(
    tiny_ja_mecab_bert: Path, query: str, passages: list[str], relevant: int
) -> None:
    results = get_scorer(str(tiny_ja_mecab_bert), device="cpu").rank(query, passages)
    assert results[0].index == relevant
    assert results[0].text == passages[relevant]


def test_mecab_model_windows_long_japanese_passage(tiny_ja_mecab_bert: Path) -> None:
    """Regression: window mode needs offsets, which Python tokenizers do not give.

    It failed with ``KeyError: 'offset_mapping'`` for the MeCab tokenizer.
    """
    query, passages, relevant = JA_RANKING_CASES[0]
    answer = passages[relevant]
    filler = off_topic(answer)
    long = filler + answer
    scorer = CrossEncoderScorer(
        str(tiny_ja_mecab_bert), device="cpu", max_length=40, long_passages="window"
    )
    best, _ = scorer.rank(query, [filler, long])
    assert best.index == 1
    start, end = best.span
    assert answer in long[start:end]
    assert long[end - 1] == "。", "windows end at a Japanese sentence end"


def test_mecab_windows_are_exact_token_runs(tiny_ja_mecab_bert: Path) -> None:
    """Regression: MeCab windows were re-tokenized from estimated offsets (up to 5 too long).

    Each piece of a long passage is tokenized on its own; a window's ids are its pieces' ids,
    each exactly the tokens of its characters, and no window passes the room. A sentence
    longer than a window (no 。 at all) is cut into pieces that each fit.
    """
    import random

    from transformers import AutoTokenizer

    from rerank_plugins.scorer._windows import _python_units

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_ja_mecab_bert))
    assert not tokenizer.is_fast
    rng = random.Random(7)
    one_sentence = "".join(p.rstrip("。") for p in JA_PASSAGES)
    texts = [one_sentence, "".join(rng.sample(JA_PASSAGES, len(JA_PASSAGES)))]
    for text in texts:
        for size in (5, 12, 30):
            ids, units = _python_units(tokenizer, text, size)
            assert units[0].start == 0
            assert units[-1].end == len(text)
            for unit in units:
                piece = tokenizer(text[unit.start : unit.end], add_special_tokens=False)
                assert ids[unit.first : unit.last] == piece["input_ids"]
                assert unit.last - unit.first <= size
            ((window_ids, windows),) = passage_windows(tokenizer, [text], size=size, stride=size)
            assert window_ids == ids
            assert all(w.last - w.first <= size for w in windows)
    scorer = CrossEncoderScorer(
        str(tiny_ja_mecab_bert), device="cpu", max_length=24, long_passages="window"
    )
    rows = scorer._encode(tokenizer, JA_RANKING_CASES[0][0], texts).ids
    assert max(len(row) for row in rows) <= 24
    assert all(
        row[0] == tokenizer.cls_token_id and row[-1] == tokenizer.sep_token_id for row in rows
    )


# -------------------------------------------------- (b) XLM-R with sentencepiece


@pytest.mark.parametrize(("query", "passages", "relevant"), JA_RANKING_CASES, ids=CASE_IDS)
def test_xlmr_ranks_japanese_cases(
    tiny_xlmr: Path, query: str, passages: list[str], relevant: int
) -> None:
    results = get_scorer(str(tiny_xlmr), device="cpu").rank(query, passages, top_n=1)
    assert [r.index for r in results] == [relevant]


def test_xlmr_japanese_scores_equal_sentence_transformers(tiny_xlmr: Path) -> None:
    query = "富士山に登れる時期はいつですか？"
    ours = get_scorer(str(tiny_xlmr), device="cpu").score(query, JA_PASSAGES)
    reference = st_reference(tiny_xlmr, query, JA_PASSAGES, segments=False)
    np.testing.assert_allclose(ours, reference, atol=1e-5, rtol=0)
    assert JA_PASSAGES[first(ours)].startswith("富士山")


def test_xlmr_windows_align_with_japanese_sentences(tiny_xlmr: Path) -> None:
    """With sentencepiece offsets, windows over Japanese text start and end at sentences."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_xlmr))
    text = "".join(JA_PASSAGES)
    spans = split_sentences(text)
    assert len(spans) == len(JA_PASSAGES)
    starts, ends = {s for s, _ in spans}, {e for _, e in spans}
    longest = max(len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in JA_PASSAGES)
    ((ids, windows),) = passage_windows(tokenizer, [text], size=longest + 4, stride=longest // 2)
    assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert len(windows) > len(JA_PASSAGES) // 2
    for window in windows:
        assert window.start in starts
        assert window.end in ends

    query = JA_RANKING_CASES[0][0]
    windowing = CrossEncoderScorer(
        str(tiny_xlmr), device="cpu", max_length=64, long_passages="window"
    )
    (result,) = windowing.rank(query, [text])
    assert result.span[0] in starts
    assert result.span[1] in ends
    # The score is the model's on exactly the passage tokens inside the span (not on the
    # span re-tokenized, which starts with an extra "▁" piece mid-text).
    import torch
    from transformers import AutoModelForSequenceClassification

    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    inside = [
        token
        for token, (begin, end) in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)
        if result.span[0] <= begin and end <= result.span[1]
    ]
    query_ids = tokenizer(query, add_special_tokens=False)["input_ids"]
    row = [tokenizer.cls_token_id, *query_ids, tokenizer.sep_token_id, tokenizer.sep_token_id]
    row += [*inside, tokenizer.sep_token_id]
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_xlmr)).eval()
    with torch.inference_mode():
        logit = model(input_ids=torch.tensor([row])).logits[0, 0]
    assert result.score == pytest.approx(float(torch.sigmoid(logit)), abs=1e-5)


# ------------------------------------------------------- (c) the [ja] extra


@pytest.mark.parametrize("module", ["fugashi", "unidic_lite"])
def test_missing_mecab_dependency_names_the_ja_extra(
    mecab_tokenizer_config_dir: Path, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [m for m in sys.modules if m == module or m.startswith(f"{module}.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, module, None)  # import fails: "not installed"
    path = str(mecab_tokenizer_config_dir)
    message = (
        f"The tokenizer of {path!r} needs {module!r}, which is not installed. "
        'Install it with: pip install "rerank-plugins[ja]"'
    )
    with pytest.raises(MissingDependencyError, match=f"^{re.escape(message)}$") as caught:
        CrossEncoderScorer(path, device="cpu")
    assert isinstance(caught.value, ImportError)
    assert caught.value.name == module


# ------------------------------------------------------------- (d) presets

JA_PRESETS = {
    # name: (hub id, layers/hidden, max_length), checked against the model cards.
    "ja-xsmall-v1": ("hotchpotch/japanese-reranker-cross-encoder-xsmall-v1", "6/384", 512),
    "ja-small-v1": ("hotchpotch/japanese-reranker-cross-encoder-small-v1", "12/384", 512),
    "ja-base-v1": ("hotchpotch/japanese-reranker-cross-encoder-base-v1", "12/768", 512),
    "ja-large-v1": ("hotchpotch/japanese-reranker-cross-encoder-large-v1", "24/1024", 512),
    "ja-bge-v2-m3-v1": ("hotchpotch/japanese-bge-reranker-v2-m3-v1", "24/1024", 512),
    "ja-tiny-v2": ("hotchpotch/japanese-reranker-tiny-v2", "3/256", 512),
    "ja-xsmall-v2": ("hotchpotch/japanese-reranker-xsmall-v2", "10/256", 512),
    "ja-small-v2": ("hotchpotch/japanese-reranker-small-v2", "13/384", 512),
    "ja-base-v2": ("hotchpotch/japanese-reranker-base-v2", "19/512", 512),
}


def test_japanese_presets_match_the_model_cards() -> None:
    table = {
        p.name: (p.model, p.size, p.max_length) for p in PRESETS.values() if p.language == "ja"
    }
    assert table == JA_PRESETS
    assert all(PRESETS[name].extra == "ja" for name in JA_PRESETS)


def test_preset_resolves_to_hub_id_and_max_length() -> None:
    model, options = resolve_preset("ja-xsmall-v1", {})
    assert model == "hotchpotch/japanese-reranker-cross-encoder-xsmall-v1"
    assert options == {"max_length": 512}


def test_explicit_option_wins_over_preset() -> None:
    model, options = resolve_preset("ja-large-v1", {"max_length": 256, "device": "cpu"})
    assert model == "hotchpotch/japanese-reranker-cross-encoder-large-v1"
    assert options == {"max_length": 256, "device": "cpu"}


def test_other_names_pass_through_unchanged() -> None:
    options = {"max_length": 128}
    assert resolve_preset("my-org/my-reranker", options) == ("my-org/my-reranker", options)
    assert resolve_preset("./ja-xsmall-v1", {}) == ("./ja-xsmall-v1", {})


class RecordingScorer:
    """Stands in for CrossEncoderScorer in get_scorer: records how it was built, no download."""

    closed = False

    def __init__(self, model: str, **options: Any) -> None:
        self.model = model
        self.options = options

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param({}, {"max_length": 512}, id="preset-default"),
        pytest.param({"max_length": 128}, {"max_length": 128}, id="explicit-wins"),
    ],
)
@pytest.mark.usefixtures("recording_registry")
def test_get_scorer_loads_the_preset_hub_id(
    options: dict[str, Any], expected: dict[str, Any]
) -> None:
    scorer: Any = get_scorer("ja-small-v1", **options)
    assert scorer.model == "hotchpotch/japanese-reranker-cross-encoder-small-v1"
    assert scorer.options == expected
    assert get_scorer("ja-small-v1", **options) is scorer, "one shared instance"


def test_cli_models_lists_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["models"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = ["preset", "model", "language", "layers/hidden", "max_length", "extra"]
    assert lines[0].split() == header
    assert [line.split()[0] for line in lines[1:]] == list(PRESETS)
    row = next(line.split() for line in lines if line.startswith("ja-base-v1 "))
    assert row == ["ja-base-v1", JA_PRESETS["ja-base-v1"][0], "ja", "12/768", "512", "ja"]


def test_cli_models_filters_by_language(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["models", "--language", "ja"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[1:]] == list(JA_PRESETS)


def test_cli_models_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["models", "--language", "ja", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows == [asdict(PRESETS[name]) for name in JA_PRESETS]
    assert {row["model"] for row in rows} == {model for model, _, _ in JA_PRESETS.values()}
