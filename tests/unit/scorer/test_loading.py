"""Loading: sharing through get_scorer, and clear errors for models that cannot work."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
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


def test_offline_hub_id_fails_at_once_with_the_fix() -> None:
    """Bug: offline, an uncached hub id spent ~27 s on retries before a long traceback."""
    with pytest.raises(ModelLoadError) as info:
        CrossEncoderScorer("rerank-plugins-test/does-not-exist")
    assert str(info.value) == (
        "Could not load model 'rerank-plugins-test/does-not-exist': offline mode is on "
        "(HF_HUB_OFFLINE is set) and the model is not in the local Hugging Face cache. Pass "
        "the path of a saved model directory instead (--model /path/to/dir on the command "
        "line), or download the model once with network access: local_files_only=True "
        "(--local-files-only) then loads it from the Hugging Face cache."
    )


def test_get_scorer_accepts_a_path_object(tiny_bert: Path) -> None:
    """Bug: get_scorer(Path(dir)) failed: "must be a hub id or a local path, got PosixPath"."""
    scorer = get_scorer(tiny_bert, device="cpu", backend="torch")
    assert scorer is get_scorer(str(tiny_bert), device="cpu", backend="torch")
    assert scorer.model == str(tiny_bert)
    assert len(scorer.score("q", ["a", "b"])) == 2


def test_a_file_is_not_a_model_directory(tiny_bert: Path) -> None:
    """Bug: a path to a file was reported as "Could not fetch ... from the Hugging Face hub"."""
    weights = next(tiny_bert.glob("*.safetensors"))
    with pytest.raises(
        ModelLoadError,
        match=rf"^Could not load model {re.escape(repr(str(weights)))}: it is a file; a model "
        r"directory is needed, the folder with config\.json, the weights and the tokenizer "
        r"files\.$",
    ):
        CrossEncoderScorer(weights)


@pytest.mark.parametrize(
    ("name", "hint"),
    [
        ("ms-marco-MiniLM-L7", " Did you mean 'ms-marco-MiniLM-L6'?"),
        ("JA-XSMALL-V1", " Did you mean 'ja-xsmall-v1'?"),
        ("nonsense", ""),
        ("a/b/c/", ""),
    ],
    ids=["preset-typo", "preset-case", "not-a-hub-id", "bad-hub-id"],
)
def test_a_name_that_is_no_preset_path_or_hub_id_fails_at_once(name: str, hint: str) -> None:
    """Bug: a preset name with a typo was sent to the hub (25 s of retries)."""
    expected = (
        f"Unknown model {name!r}: not a preset, an existing directory or a Hugging Face hub id "
        f"of the form 'owner/name'.{hint} `rerank-plugins models` lists the presets."
    )
    if name == "a/b/c/":
        expected = (
            f"Could not load model {name!r}: no such directory. Pass the path of a saved model."
        )
    with pytest.raises(ModelLoadError, match=f"^{re.escape(expected)}$"):
        get_scorer(name)


def test_a_preset_name_given_to_the_scorer_points_to_get_scorer() -> None:
    with pytest.raises(
        ModelLoadError,
        match=r"^'ms-marco-MiniLM-L6' is a preset name: load it with "
        r"get_scorer\('ms-marco-MiniLM-L6'\), or pass its hub id "
        r"'cross-encoder/ms-marco-MiniLM-L6-v2' to CrossEncoderScorer\.$",
    ):
        CrossEncoderScorer("ms-marco-MiniLM-L6")


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


def test_a_path_object_is_never_a_preset_name() -> None:
    from rerank_plugins.presets import resolve_preset

    assert resolve_preset(Path("ms-marco-MiniLM-L6"), {}) == ("ms-marco-MiniLM-L6", {})
    assert resolve_preset("ms-marco-MiniLM-L6", {})[0] == "cross-encoder/ms-marco-MiniLM-L6-v2"


def test_create_app_accepts_a_path_object(tiny_bert: Path) -> None:
    """Bug: a model given as a Path object was rejected ("must be a hub id or a local path")."""
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from rerank_plugins.server.app import create_app

    app = create_app(model=tiny_bert, scorer_options={"device": "cpu", "backend": "torch"})
    with TestClient(app) as client:
        for _ in range(600):
            health = client.get("/health")
            if health.status_code == 200:
                break
            time.sleep(0.05)
        assert health.json() == {"status": "ok", "model": str(tiny_bert)}


def test_a_hub_id_near_a_preset_model_gets_a_suggestion() -> None:
    """When the hub answers 404 for a near miss of a preset's hub id, the message names it."""
    from rerank_plugins.scorer._model_source import load_error

    cause = OSError("cross-encoder/ms-marco-MiniLM-L7-v2 is not a valid model identifier.")
    message = str(load_error("cross-encoder/ms-marco-MiniLM-L7-v2", cause, local_files_only=False))
    assert message == (
        "Could not fetch model 'cross-encoder/ms-marco-MiniLM-L7-v2' from the Hugging Face hub: "
        "cross-encoder/ms-marco-MiniLM-L7-v2 is not a valid model identifier. Did you mean "
        "'cross-encoder/ms-marco-MiniLM-L6-v2'? Check the id's spelling, and that you are "
        "logged in for private repos. Offline, pass the path of a local copy, or set "
        "local_files_only=True to use the local cache."
    )
