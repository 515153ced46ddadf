"""The torch backend: transformers' model on any device and dtype."""

from __future__ import annotations

from typing import Any

from rerank_plugins.scorer._backend import LoadedModel, LoadRequest
from rerank_plugins.scorer._loading import head_settings, load_weights, uses_token_types


class TorchLoader:
    """Loads the weights with transformers and moves them to the requested device and dtype."""

    name = "torch"

    def load(self, request: LoadRequest) -> LoadedModel:
        """Load the cross-encoder's weights; raise ``ModelLoadError`` if it is not one."""
        import torch

        source, config, tokenizer = request.files
        loaded: Any = load_weights(request.model, source, config, **request.hub_options)
        torch_device = torch.device(request.device)
        torch_dtype = getattr(torch, request.dtype)
        loaded = loaded.to(device=torch_device, dtype=torch_dtype).eval()
        return LoadedModel(
            tokenizer=tokenizer,
            model=loaded,
            device=torch_device,
            dtype=torch_dtype,
            uses_token_types=uses_token_types(tokenizer, loaded),
            **head_settings(request),
        )
