"""The shared cross-encoder scorer and its process-wide registry."""

from __future__ import annotations

from rerank_plugins.scorer._registry import clear_scorers, get_scorer
from rerank_plugins.scorer.cross_encoder import CrossEncoderScorer

__all__ = ["CrossEncoderScorer", "clear_scorers", "get_scorer"]
