"""The loader interface: what the scorer asks of a backend, and what a backend hands back.

Three backends implement :class:`Loader`: torch (``_torch_backend``, any device and dtype),
ONNX Runtime (``_onnx_runtime``) and OpenVINO (``_openvino_runtime``, CPU fp32/bf16); the
last two run the same ONNX export, made and cached on first use (``_onnx_files``). None
imports another: all build on the shared steps in ``_loading`` and return a
:class:`LoadedModel`.
The scorer chooses which to try, in which order (see ``CrossEncoderScorer.__init__``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from rerank_plugins.scorer._activation import Activation

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedTokenizerBase

# What loads before the weights: (source, config, tokenizer), from load_config_and_tokenizer.
ModelFiles = tuple[str, Any, "PreTrainedTokenizerBase"]


class Network(Protocol):
    """A model called like a transformers classifier: ``network(**inputs).logits``."""

    @property
    def device(self) -> torch.device:
        """Where the inputs must be."""

    def __call__(self, **inputs: torch.Tensor) -> Any:
        """Run one padded batch; the result has ``.logits``."""


@dataclass(frozen=True, slots=True)
class LoadRequest:
    """Everything a backend needs to load one model, already resolved by the scorer.

    ``fallback`` is set for ``backend="auto"``: a loader may then decline (return None)
    where the next one should run instead; otherwise it loads or raises.
    """

    model: str
    files: ModelFiles
    revision: str | None
    device: str
    dtype: str
    quantize: bool
    max_length: int | None
    activation: str | None
    local_files_only: bool
    trust_remote_code: bool
    token: str | bool | None
    fallback: bool = False

    @property
    def hub_options(self) -> dict[str, Any]:
        """The keyword arguments every ``from_pretrained`` call gets."""
        return {
            "revision": self.revision,
            "local_files_only": self.local_files_only,
            "trust_remote_code": self.trust_remote_code,
            "token": self.token,
        }


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A tokenizer and model ready for inference, with the settings they were resolved to."""

    tokenizer: PreTrainedTokenizerBase
    model: Network
    device: torch.device
    dtype: torch.dtype
    max_length: int
    activation: Activation
    num_labels: int
    uses_token_types: bool


@dataclass(frozen=True, slots=True)
class Logits:
    """What the ONNX Runtime and OpenVINO networks return: ``.logits``, as transformers does."""

    logits: torch.Tensor


class Loader(Protocol):
    """A backend: loads a model for a :class:`LoadRequest`, or declines (None) in fallback."""

    name: str

    def load(self, request: LoadRequest) -> LoadedModel | None:
        """Load the model; return None only when ``request.fallback`` allows declining."""


def load_first(loaders: list[Loader], request: LoadRequest) -> tuple[str, LoadedModel]:
    """Load with the first backend that does not decline; the last one may not decline.

    Returns the backend's name and the loaded model.
    """
    for position, loader in enumerate(loaders):
        fallback = position < len(loaders) - 1
        loaded = loader.load(dataclasses.replace(request, fallback=fallback))
        if loaded is not None:
            return loader.name, loaded
    msg = f"No backend loaded {request.model!r}: the last one declined, which it must not."
    raise RuntimeError(msg)
