"""One forward pass: pad a batch of token rows, run the network, turn logits into scores."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

# Scores one batch: (token ids per row, token types per row or None) -> one score per row.
Forward = Callable[[list[list[int]], "list[list[int]] | None"], list[float]]


def forward_batch(
    network: Any,
    ids: list[list[int]],
    types: list[list[int]] | None,
    *,
    device: torch.device,
    pad_id: int,
    num_labels: int,
    activate: torch.nn.Module | None,
) -> list[float]:
    """Pad one batch, run ``network`` on ``device``, and turn logits into scores (in fp32)."""
    import torch

    width = max(len(row) for row in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
    token_type_ids = torch.zeros((len(ids), width), dtype=torch.long) if types else None
    for row, tokens in enumerate(ids):
        input_ids[row, : len(tokens)] = torch.tensor(tokens)
        attention_mask[row, : len(tokens)] = 1
        if token_type_ids is not None and types is not None:
            token_type_ids[row, : len(tokens)] = torch.tensor(types[row])
    inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if token_type_ids is not None:
        inputs["token_type_ids"] = token_type_ids
    inputs = {name: _to_device(tensor, device) for name, tensor in inputs.items()}
    logits = network(**inputs).logits.float()
    raw = logits[:, 0] if num_labels == 1 else logits[:, 1] - logits[:, 0]
    if activate is not None:
        raw = activate(raw)
    return [float(value) for value in raw.cpu().tolist()]


def forward_splitting_on_oom(
    forward: Forward, ids: list[list[int]], types: list[list[int]] | None
) -> list[float]:
    """Run a batch; on CUDA out-of-memory, split it in halves and retry (down to one pair)."""
    import torch

    try:
        return forward(ids, types)
    except torch.cuda.OutOfMemoryError:
        if len(ids) == 1:
            raise
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        half = len(ids) // 2
        logger.warning("CUDA out of memory on %d pairs; retrying in halves.", len(ids))
        return forward_splitting_on_oom(
            forward, ids[:half], types[:half] if types else None
        ) + forward_splitting_on_oom(forward, ids[half:], types[half:] if types else None)


def _to_device(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    if tensor.device == device:
        return tensor
    if device.type == "cuda":
        return tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device)
