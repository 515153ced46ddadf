"""``benchmarks/gpu.py``: its CPU-checkable logic, since the GPU run needs a device machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[3] / "benchmarks"


@pytest.fixture
def gpu(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> object:
    """The benchmark module, writing its results under ``tmp_path``."""
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import _common
    import gpu as module

    monkeypatch.setattr(_common, "RESULTS", tmp_path)
    return module


def test_without_cuda_it_stops_with_a_clear_message() -> None:
    """Guards against a GPU benchmark that silently measures the CPU when CUDA is missing."""
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "gpu.py")], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert "benchmarks/gpu.py needs a CUDA GPU" in done.stderr
    assert "--dry-run" in done.stderr


def test_dry_run_goes_through_every_step_on_the_cpu(
    gpu: object, tiny_bert: Path, tmp_path: Path
) -> None:
    assert gpu.main(["--dry-run", "--model", str(tiny_bert), "--output", "dry"]) == 0  # type: ignore[attr-defined]
    report = json.loads((tmp_path / "dry.json").read_text())
    assert set(report["speed"]) == {
        "ours bf16",
        "ours fp16",
        "ours bf16, one request at a time",
        "ours bf16, no overlap",
        "sentence-transformers fp16",
        "sentence-transformers bf16",
    }
    assert all(row["pairs_s"] > 0 for row in report["speed"].values())
    assert report["oom"]["max_abs_diff_vs_ordinary_batches"] < 1e-5
    assert report["concurrency"]["top5_same"] == "16/16"
    assert report["packed"]["fp32"] < 1e-4
    assert report["speed"]["ours bf16"]["x ours bf16, no overlap"] > 0
    assert "DRY RUN" in (tmp_path / "dry.md").read_text()
    assert "**overlap**: ours bf16" in (tmp_path / "dry.md").read_text()


@pytest.mark.parametrize(
    ("name", "explicit", "expected"),
    [("NVIDIA H200", None, 989.4), ("NVIDIA A100-SXM4-80GB", None, 312.0), ("Mystery", 5.0, 5.0)],
    ids=["h200", "a100", "explicit"],
)
def test_peak_lookup(gpu: object, name: str, explicit: float | None, expected: float) -> None:
    assert gpu.peak_tflops(name, explicit) == expected  # type: ignore[attr-defined]
