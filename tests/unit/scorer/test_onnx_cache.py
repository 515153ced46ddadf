"""The ONNX cache under real conditions (issue 9, item 6).

Keys must not depend on which hub files happen to be downloaded; a truncated or corrupt
export must be replaced, not silently run as torch (``auto``) or raised raw (``onnx``); an
unwritable cache directory must not make every start pay for an export it cannot keep.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from rerank_plugins import CrossEncoderScorer, ModelLoadError
from rerank_plugins.scorer import _onnx_cache, _onnx_export, _onnx_runtime

QUERY = "How long does a cat sleep each day?"
PASSAGES = ["A cat sleeps for sixteen hours a day.", "Lava flows down the volcano."]


@pytest.fixture
def exports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Export in this process into a fresh cache; return the list of export directories."""
    monkeypatch.setenv(_onnx_cache.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(_onnx_cache, "_unwritable", {})
    done: list[Path] = []

    def export(
        model: str, source: str, common: dict[str, Any], directory: Path, quantize: bool
    ) -> None:
        done.append(directory)
        try:
            _onnx_export.export_model(model, source, common, directory, quantize)
        except Exception as err:
            raise ModelLoadError(f"Exporting {model!r} to ONNX failed: {err}") from err

    monkeypatch.setattr(_onnx_export, "run_export", export)
    return done


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_hub_snapshot_is_keyed_by_its_commit_not_by_its_files(tmp_path: Path) -> None:
    """Guards against a key that lists the snapshot's weight files: on a first run they
    are not downloaded yet, so the next process exported again under a new key."""
    snapshot = tmp_path / "models--org--model" / "snapshots" / "0123abcd"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    before = _onnx_cache.cache_key("org/model", None, snapshot)
    (snapshot / "model.safetensors").write_bytes(b"weights")
    assert _onnx_cache.cache_key("org/model", None, snapshot) == before
    assert _onnx_cache.cache_key("org/model", "main", snapshot) == before
    other = snapshot.parent / "4567efgh"
    other.mkdir()
    assert _onnx_cache.cache_key("org/model", None, other) != before


def test_a_local_model_is_keyed_by_its_contents(tmp_path: Path) -> None:
    """Guards against keys that change without the weights changing (a copy, a touched
    file) and against reusing an export after the config or weights changed."""
    first, copy = tmp_path / "a", tmp_path / "b"
    for directory in (first, copy):
        directory.mkdir()
        (directory / "config.json").write_text('{"hidden_size": 32}')
        (directory / "model.safetensors").write_bytes(b"weights")
    assert _onnx_cache.cache_key("m", None, first) == _onnx_cache.cache_key("m", None, copy)
    (copy / "config.json").write_text('{"hidden_size": 64}')
    assert _onnx_cache.cache_key("m", None, first) != _onnx_cache.cache_key("m", None, copy)


def test_the_manifest_is_written_last_and_lists_the_files(
    tiny_bert: Path, exports: list[Path]
) -> None:
    """Guards against reading an entry whose export stopped half-way: only a manifest,
    written after every file, makes an entry count."""
    CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx")
    (directory,) = exports
    assert _onnx_cache.complete(directory, "model.onnx")
    manifest = (directory / "export.json").read_text()
    assert f'"model.onnx": {(directory / "model.onnx").stat().st_size}' in manifest
    (directory / "export.json").unlink()  # as if the export had stopped before it
    assert not _onnx_cache.complete(directory, "model.onnx")


@pytest.mark.parametrize("backend", ["auto", "onnx", "openvino"])
@pytest.mark.parametrize("damage", ["truncated", "corrupt"])
def test_a_broken_cache_entry_is_exported_again_once(
    tiny_bert: Path,
    exports: list[Path],
    caplog: pytest.LogCaptureFixture,
    backend: str,
    damage: str,
) -> None:
    """Guards against a truncated or corrupt model.onnx making backend='auto' run torch
    forever and backend='onnx' raise a raw InvalidProtobuf (OpenVINO: a raw read error)."""
    if backend == "openvino":
        pytest.importorskip("openvino")
    expected_backend = "openvino" if backend == "openvino" else "onnx"
    expected = CrossEncoderScorer(str(tiny_bert), device="cpu", backend=backend).score(
        QUERY, PASSAGES
    )
    (directory,) = exports
    model = directory / "model.onnx"
    size = model.stat().st_size
    if damage == "truncated":
        model.write_bytes(model.read_bytes()[: size // 2])
    else:  # same size, so the manifest still matches: it fails only when loaded
        model.write_bytes(b"\x00garbage" * (size // 8) + b"\x00" * (size % 8))
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="rerank_plugins.scorer"):
        scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", backend=backend)
    assert scorer.backend == expected_backend
    assert scorer.score(QUERY, PASSAGES) == pytest.approx(expected, abs=1e-6)
    assert exports == [directory, directory]
    (warning,) = _warnings(caplog)
    assert warning.endswith("exporting it again.")
    again = CrossEncoderScorer(str(tiny_bert), device="cpu", backend=backend)
    assert again.backend == expected_backend
    assert len(exports) == 2


def test_an_entry_broken_again_after_its_re_export_is_named(
    tiny_bert: Path, exports: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With backend='onnx', a model that cannot load even after a fresh export raises a
    ModelLoadError naming it (not a raw onnxruntime error), after exactly one re-export."""
    CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx")

    def refuse(self: Any, path: Path, *, device: str) -> None:
        raise RuntimeError("INVALID_PROTOBUF (injected)")

    monkeypatch.setattr(_onnx_runtime.OnnxCrossEncoder, "__init__", refuse)
    message = r"^The ONNX export of '.+' at .+ could not be loaded: INVALID_PROTOBUF \(injected\)$"
    with pytest.raises(ModelLoadError, match=message):
        CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx")
    assert len(exports) == 2


def _unwritable_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A cache directory that cannot be created (its parent is a file): fails even as root."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    monkeypatch.setenv(_onnx_cache.CACHE_ENV, str(blocker / "cache"))
    return blocker


def test_an_unwritable_cache_makes_auto_use_torch_at_once(
    tiny_bert: Path,
    exports: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Guards against every process start paying for an export it cannot keep (12-13 s
    against 4.8 s): backend='auto' must not export at all, and must say what to set."""
    _unwritable_cache(tmp_path, monkeypatch)
    with caplog.at_level(logging.WARNING, logger="rerank_plugins.scorer"):
        first = CrossEncoderScorer(str(tiny_bert), device="cpu")
        second = CrossEncoderScorer(str(tiny_bert), device="cpu")
    assert (first.backend, second.backend) == ("torch", "torch")
    assert exports == []
    (warning,) = _warnings(caplog)
    assert "is not writable" in warning
    assert "set RERANK_PLUGINS_CACHE_DIR to a writable directory" in warning


def test_an_unwritable_cache_makes_onnx_export_to_a_temporary_directory_once(
    tiny_bert: Path,
    exports: list[Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _unwritable_cache(tmp_path, monkeypatch)
    expected = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="torch").score(
        QUERY, PASSAGES
    )
    with caplog.at_level(logging.WARNING, logger="rerank_plugins.scorer"):
        first = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx")
        second = CrossEncoderScorer(str(tiny_bert), device="cpu", backend="onnx")
    assert first.score(QUERY, PASSAGES) == pytest.approx(expected, abs=1e-5)
    assert second.score(QUERY, PASSAGES) == pytest.approx(expected, abs=1e-5)
    (directory,) = exports
    assert directory.parent.name.startswith("rerank-plugins-onnx-")
    assert len(_warnings(caplog)) == 1
