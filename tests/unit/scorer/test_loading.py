"""Loading: sharing through get_scorer, and clear errors for models that cannot work."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import rerank_plugins
from rerank_plugins import CrossEncoderScorer, ModelLoadError, clear_scorers, get_scorer
from rerank_plugins.scorer import _registry


@pytest.fixture(autouse=True)
def _fresh_registry() -> None:
    clear_scorers()


def test_get_scorer_shares_one_instance_per_options(tiny_bert: Path) -> None:
    first = get_scorer(str(tiny_bert))
    assert get_scorer(str(tiny_bert), device="cpu", dtype="float32") is first
    assert get_scorer(str(tiny_bert), max_length=64) is not first


def test_concurrent_first_calls_load_once(tiny_bert: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[int] = []
    real = _registry.CrossEncoderScorer

    def counting(*args: object, **kwargs: object) -> CrossEncoderScorer:
        loads.append(1)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(_registry, "CrossEncoderScorer", counting)
    barrier = threading.Barrier(8)

    def load(_: int) -> CrossEncoderScorer:
        barrier.wait()
        return get_scorer(str(tiny_bert))

    with ThreadPoolExecutor(8) as pool:
        scorers = list(pool.map(load, range(8)))
    assert len(loads) == 1
    assert all(s is scorers[0] for s in scorers)


def test_model_without_classification_head_is_rejected(tiny_base_model: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"is not a cross-encoder: its architecture is"):
        CrossEncoderScorer(str(tiny_base_model))


def test_model_with_three_labels_is_rejected(tiny_bert_3labels: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"has a classification head with 3 labels"):
        CrossEncoderScorer(str(tiny_bert_3labels))


def test_untrained_head_is_rejected(tiny_base_model: Path, tmp_path: Path) -> None:
    """A base checkpoint relabelled as a classifier would give random scores."""
    import json
    import shutil

    target = tmp_path / "relabelled"
    shutil.copytree(tiny_base_model, target)
    config = json.loads((target / "config.json").read_text())
    config["architectures"] = ["BertForSequenceClassification"]
    config["num_labels"] = 1
    (target / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelLoadError, match=r"has no trained classification head"):
        CrossEncoderScorer(str(target))


def test_missing_local_directory_says_so(tmp_path: Path) -> None:
    missing = str(tmp_path / "nope" / "model")
    with pytest.raises(ModelLoadError, match=r"no such directory\. Pass the path of a saved model"):
        CrossEncoderScorer(missing)


def test_unfetchable_hub_id_explains_offline_options() -> None:
    with pytest.raises(ModelLoadError) as info:
        CrossEncoderScorer("rerank-plugins-test/does-not-exist")
    message = str(info.value)
    assert message.startswith("Could not fetch model 'rerank-plugins-test/does-not-exist'")
    assert "local_files_only=True" in message
    assert "path of a local copy" in message


def test_local_files_only_error_names_the_cache() -> None:
    with pytest.raises(ModelLoadError, match=r"from the local Hugging Face cache"):
        CrossEncoderScorer("rerank-plugins-test/does-not-exist", local_files_only=True)


def test_import_is_light() -> None:
    """`import rerank_plugins` must not pull in torch or any framework."""
    code = (
        "import sys, rerank_plugins; heavy = ['torch', 'transformers', 'fastapi', 'httpx', "
        "'langchain_core', 'llama_index', 'sentence_transformers', 'numpy']; "
        "print(','.join(m for m in heavy if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_public_api_is_pinned() -> None:
    assert sorted(rerank_plugins.__all__) == [
        "CrossEncoderScorer",
        "MissingDependencyError",
        "ModelLoadError",
        "OverloadedError",
        "RankResult",
        "RemoteRerankError",
        "RemoteScorer",
        "RerankPluginsError",
        "__version__",
        "bm25_tokenize",
        "clear_scorers",
        "get_scorer",
        "split_sentences",
    ]
    for name in rerank_plugins.__all__:
        assert getattr(rerank_plugins, name) is not None
