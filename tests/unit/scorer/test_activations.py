"""Every activation sentence-transformers can save for a cross-encoder scores as predict does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from sentence_transformers import CrossEncoder

from rerank_plugins import CrossEncoderScorer
from rerank_plugins.errors import ModelLoadError
from rerank_plugins.scorer._activation import _ACTIVATION_CLASSES, ACTIVATIONS

QUERY = "why do cats sleep so much"
PASSAGES = [
    "cats sleep most of the day and purr when they are happy",
    "the train left the station on time",
    "富士山は日本で一番高い山です。",
    "",
]


@pytest.fixture(scope="module")
def saved_with(tiny_bert: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """``tiny_bert`` saved by sentence-transformers once per allowed activation."""
    root = tmp_path_factory.mktemp("activations")
    paths = {}
    for name, cls in _ACTIVATION_CLASSES.items():
        model = CrossEncoder(str(tiny_bert), device="cpu", activation_fn=getattr(torch.nn, cls)())
        model.save(str(root / name))
        paths[name] = root / name
    return paths


def _predict(path: Path) -> np.ndarray:
    return CrossEncoder(str(path), device="cpu").predict([(QUERY, p) for p in PASSAGES])


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_saved_activation_equals_sentence_transformers_torch(
    name: str, saved_with: dict[str, Path]
) -> None:
    """A model saved with e.g. Tanh got sigmoid and a warning: its scores were not the card's."""
    saved = json.loads((saved_with[name] / "config_sentence_transformers.json").read_text())
    assert saved["activation_fn"].endswith("." + _ACTIVATION_CLASSES[name])
    scorer = CrossEncoderScorer(str(saved_with[name]), device="cpu", backend="torch")
    assert scorer.activation == name
    np.testing.assert_allclose(
        scorer.score(QUERY, PASSAGES), _predict(saved_with[name]), atol=1e-5, rtol=0
    )


def test_saved_tanh_equals_sentence_transformers_onnx(saved_with: dict[str, Path]) -> None:
    """The ONNX backend reads the same saved activation as torch (tanh, not sigmoid)."""
    scorer = CrossEncoderScorer(str(saved_with["tanh"]), device="cpu", backend="onnx")
    assert (scorer.backend, scorer.activation) == ("onnx", "tanh")
    np.testing.assert_allclose(
        scorer.score(QUERY, PASSAGES), _predict(saved_with["tanh"]), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_every_explicit_activation_equals_sentence_transformers(
    backend: str, tiny_bert: Path
) -> None:
    """activation='<name>' applies the same torch.nn module as predict(activation_fn=...)."""
    reference = CrossEncoder(str(tiny_bert), device="cpu")
    pairs = [(QUERY, p) for p in PASSAGES]
    for name, cls in _ACTIVATION_CLASSES.items():
        scorer = CrossEncoderScorer(str(tiny_bert), device="cpu", backend=backend, activation=name)
        expected = reference.predict(pairs, activation_fn=getattr(torch.nn, cls)())
        # "none" gives raw logits (up to ~6 here); each fp32 backend is ~1e-5 from float64.
        np.testing.assert_allclose(
            scorer.score(QUERY, PASSAGES), expected, rtol=1e-5, atol=1e-5, err_msg=name
        )


@pytest.mark.parametrize(
    "saved",
    ["torch.nn.modules.activation.Softmax", "my_package.activations.Custom", "os.system"],
    ids=["not-elementwise", "custom-code", "arbitrary"],
)
def test_activation_outside_the_allow_list_is_named_in_the_error(
    saved: str, saved_with: dict[str, Path], tmp_path: Path
) -> None:
    """A saved class that is not an allowed torch.nn activation is refused, never imported."""
    import shutil

    path = tmp_path / "model"
    shutil.copytree(saved_with["tanh"], path)
    config = path / "config_sentence_transformers.json"
    config.write_text(json.dumps({**json.loads(config.read_text()), "activation_fn": saved}))
    with pytest.raises(ModelLoadError, match=rf"saved with the activation '{saved}'.*Tanh"):
        CrossEncoderScorer(str(path), device="cpu", backend="torch")
    explicit = CrossEncoderScorer(str(path), device="cpu", backend="torch", activation="sigmoid")
    assert explicit.activation == "sigmoid"


def test_short_class_path_is_accepted(saved_with: dict[str, Path], tmp_path: Path) -> None:
    """``torch.nn.Tanh`` (a hand-written config) names the same class as the full module path."""
    import shutil

    path = tmp_path / "model"
    shutil.copytree(saved_with["tanh"], path)
    (path / "config_sentence_transformers.json").write_text(
        json.dumps({"activation_fn": "torch.nn.Tanh"})
    )
    assert CrossEncoderScorer(str(path), device="cpu", backend="torch").activation == "tanh"


def test_unknown_activation_argument_lists_the_choices(tiny_bert: Path) -> None:
    with pytest.raises(ValueError, match=r"activation must be one of 'auto', 'none', 'sigmoid', "):
        CrossEncoderScorer(str(tiny_bert), device="cpu", activation="softmax")
