"""Length-aware batching: sort by token count, cut batches by a padded-token budget."""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(
    lengths: Sequence[int], *, max_tokens: int, max_size: int, min_batches: int = 1
) -> list[list[int]]:
    """Group item indices into batches, longest first, so that padding waste stays small.

    A batch holds at most ``max_size`` items and at most ``max_tokens`` padded tokens
    (items x longest item); an item longer than the budget still gets a batch of its own.
    With ``min_batches``, batches are also cut to at most ``ceil(items / min_batches)``
    items, so that that many batches can run at once even for a few items.
    """
    max_size = min(max_size, max(1, -(-len(lengths) // min_batches)))
    order = sorted(range(len(lengths)), key=lambda i: lengths[i], reverse=True)
    batches: list[list[int]] = []
    current: list[int] = []
    for index in order:
        # Sorted longest first, so the batch's first item sets its padded width.
        width = lengths[current[0]] if current else lengths[index]
        if current and (len(current) >= max_size or (len(current) + 1) * width > max_tokens):
            batches.append(current)
            current = []
        current.append(index)
    if current:
        batches.append(current)
    return batches
