"""Which activation turns a cross-encoder's logits into scores, and the torch module for it.

Order (sentence-transformers): explicit argument > the saved choice > ``sigmoid``. Only an
allow-list of elementwise ``torch.nn`` classes is ever built; a class named in a config is
never imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rerank_plugins.errors import ModelLoadError

if TYPE_CHECKING:
    import torch

# The name of an activation: "none" or one of _ACTIVATION_CLASSES, lowercase ("sigmoid", "tanh").
Activation = str

# The torch.nn activations a cross-encoder can be saved with, by the name of the ``activation``
# option. sentence-transformers saves the class path (``fullname``, e.g.
# "torch.nn.modules.activation.Tanh") and builds it with no arguments; these are the elementwise
# torch.nn activations that take none. Only these classes are ever built: a class named in a
# config is never imported. (Softmax and friends are not elementwise; RReLU is random.)
_ACTIVATION_CLASSES: dict[str, str] = {
    "none": "Identity",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    **{
        name.lower(): name
        for name in (
            *("ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "CELU", "SELU", "GELU", "SiLU"),
            *("Mish", "Softplus", "Softsign", "Hardtanh", "Hardsigmoid", "Hardswish"),
            *("Hardshrink", "Softshrink", "Tanhshrink", "LogSigmoid"),
        )
    },
}
ACTIVATIONS: tuple[str, ...] = tuple(_ACTIVATION_CLASSES)


def resolve_activation(requested: str | None, config: Any, saved: str | None = None) -> Activation:
    """Pick the activation: explicit argument > the saved sentence-transformers choice > sigmoid.

    ``saved`` is the ``activation_fn`` of ``config_sentence_transformers.json``
    (sentence-transformers >= 5); older versions kept it in ``config.json``. A saved class
    outside the allow-list (:data:`ACTIVATIONS`) raises ``ModelLoadError`` naming it.
    """
    choice = (requested or "auto").lower()
    if choice in _ACTIVATION_CLASSES:
        return choice
    if choice != "auto":
        names = ", ".join(repr(name) for name in ("auto", *ACTIVATIONS))
        msg = f"activation must be one of {names}, got {requested!r}."
        raise ValueError(msg)
    if config.num_labels == 2:
        # A 2-logit head scores with the probability of the relevant class (label 1).
        return "sigmoid"
    saved = (
        saved
        or (getattr(config, "sentence_transformers", None) or {}).get("activation_fn")
        or getattr(config, "sbert_ce_default_activation_function", None)
    )
    if saved is None:
        return "sigmoid"
    name = _activation_of_class(saved)
    if name is None:
        msg = (
            f"The model was saved with the activation {saved!r}, which rerank-plugins does not "
            "build: it runs only these torch.nn activations and never imports a class named in "
            f"a config: {', '.join(_ACTIVATION_CLASSES.values())}. Choose one explicitly, e.g. "
            "activation='sigmoid' or activation='none' (raw logits)."
        )
        raise ModelLoadError(msg)
    return name


def _activation_of_class(path: str) -> Activation | None:
    """The activation a saved class path names (``torch.nn.Tanh`` or its full module path)."""
    for name, cls in _ACTIVATION_CLASSES.items():
        module = "linear" if cls == "Identity" else "activation"
        if path in (f"torch.nn.{cls}", f"torch.nn.modules.{module}.{cls}"):
            return name
    return None


def activation_function(activation: Activation) -> torch.nn.Module | None:
    """The torch module that applies ``activation`` to fp32 logits; None for ``"none"``."""
    import torch

    if activation == "none":
        return None
    module: torch.nn.Module = getattr(torch.nn, _ACTIVATION_CLASSES[activation])()
    return module.eval()
