"""What both framework adapters share: choosing a scorer and checking their settings."""

from __future__ import annotations

from typing import Any

from rerank_plugins._results import Scorer


def resolve_scorer(model: str | None, scorer: Any, options: dict[str, Any]) -> Scorer:
    """Return ``scorer``, or the shared scorer of ``model``; exactly one of them must be given."""
    if scorer is not None:
        if model is not None or options:
            msg = "Pass either scorer=... or model=... (with scorer_options), not both."
            raise ValueError(msg)
        if not isinstance(scorer, Scorer):
            msg = (
                f"scorer must have rank() and arank() methods and a .model name, got "
                f"{type(scorer).__name__}. Use get_scorer(...) or RemoteScorer(...)."
            )
            raise TypeError(msg)
        return scorer
    if model is None:
        msg = (
            "Pass model='<hub id or local path>' (e.g. 'cross-encoder/ms-marco-MiniLM-L6-v2') "
            "or scorer=get_scorer(...)."
        )
        raise ValueError(msg)
    from rerank_plugins.scorer import get_scorer

    return get_scorer(model, **options)
