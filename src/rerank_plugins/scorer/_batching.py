"""Length-aware batching: sort by token count, cut batches by a padded-token budget."""

from __future__ import annotations

from collections.abc import Sequence


def plan_batches(
    lengths: Sequence[int], *, max_tokens: int, max_size: int, min_batches: int = 1
) -> list[list[int]]:
    """Group item indices into batches, longest first, so that padding waste stays small.

    A batch holds at most ``max_size`` items and at most ``max_tokens`` padded tokens
    (items x longest item); an item longer than the budget still gets a batch of its own.
    ``min_batches`` is how many batches run at once: there are at least that many (when
    there are that many items) and, where batches of about equal tokens fit the limits, a
    multiple of it, all of about equal tokens, so that no thread idles at the end.
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
    count = -(-len(batches) // min_batches) * min_batches
    if min_batches > 1 and count <= len(order):
        balanced = _equal_tokens(order, lengths, count)
        if all(_fits(batch, lengths, max_tokens, max_size) for batch in balanced):
            return balanced
    return batches


def _equal_tokens(order: list[int], lengths: Sequence[int], count: int) -> list[list[int]]:
    """Cut ``order`` (longest first) into ``count`` runs of about equal token sums."""
    total = sum(lengths[i] for i in order)
    batches: list[list[int]] = [[] for _ in range(count)]
    done = 0
    group = 0
    for position, index in enumerate(order):
        # Move on once this run holds its share, keeping an item for every run left.
        left = len(order) - position
        if batches[group] and (done >= total * (group + 1) / count or left <= count - group - 1):
            group += 1
        batches[group].append(index)
        done += lengths[index]
    return batches


def _fits(batch: list[int], lengths: Sequence[int], max_tokens: int, max_size: int) -> bool:
    """Whether a batch (longest first) keeps within the item and padded-token limits."""
    return len(batch) == 1 or (
        len(batch) <= max_size and len(batch) * lengths[batch[0]] <= max_tokens
    )
