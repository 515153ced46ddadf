"""Short names for well-known rerankers, with the settings each one is meant to run with.

``get_scorer("ja-xsmall-v1")`` loads ``hotchpotch/japanese-reranker-cross-encoder-xsmall-v1``
with its recommended ``max_length``; options passed explicitly always win. Presets are data:
add one by adding a row.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from typing import Any

__all__ = ["PRESETS", "Preset", "resolve_preset", "suggest_preset"]


@dataclass(frozen=True, slots=True)
class Preset:
    """A named reranker: hub id, language, size and recommended options."""

    name: str
    model: str
    language: str
    size: str
    max_length: int
    activation: str = "auto"
    extra: str | None = None
    notes: str = ""


_JA = "hotchpotch/japanese-reranker-cross-encoder-"
_V2_NOTES = "ModernBERT (ruri-v3) with a sentencepiece tokenizer; needs transformers >= 4.48."
PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("ms-marco-MiniLM-L6", "cross-encoder/ms-marco-MiniLM-L6-v2", "en", "6/384", 512),
        Preset("ms-marco-MiniLM-L12", "cross-encoder/ms-marco-MiniLM-L12-v2", "en", "12/384", 512),
        Preset("ms-marco-TinyBERT-L2", "cross-encoder/ms-marco-TinyBERT-L2-v2", "en", "2/128", 512),
        Preset(
            "reranker-bert-tiny-gooaq-bce-tanh-v4",
            "cross-encoder-testing/reranker-bert-tiny-gooaq-bce-tanh-v4",
            "en",
            "2/128",
            512,
            activation="tanh",
            notes=(
                "sentence-transformers' test reranker, saved with a Tanh activation: scores lie "
                "in [-1, 1], as its card's CrossEncoder.predict gives them."
            ),
        ),
        Preset(
            "xpmir-MiniLM-L12-DistillRankNET",
            "xpmir/cross-encoder-MiniLM-L12-DistillRankNET",
            "en",
            "12/384",
            512,
            activation="none",
            notes=(
                "Its card scores with transformers: raw logits, truncation=True at 512 tokens "
                "(the passage is cut; the same unless a query fills half of the 512)."
            ),
        ),
        Preset(
            "mmarco-mMiniLMv2-L12",
            "cross-encoder/mmarco-mMiniLMv2-L12-H384-v1",
            "multilingual",
            "12/384",
            512,
        ),
        Preset("bge-reranker-base", "BAAI/bge-reranker-base", "en+zh", "12/768", 512),
        Preset("bge-reranker-large", "BAAI/bge-reranker-large", "en+zh", "24/1024", 512),
        Preset(
            "bge-reranker-v2-m3",
            "BAAI/bge-reranker-v2-m3",
            "multilingual",
            "24/1024",
            1024,
            notes="XLM-RoBERTa; accepts up to 8192 tokens, 1024 is the usual speed/quality point.",
        ),
        Preset(
            "ja-xsmall-v1",
            _JA + "xsmall-v1",
            "ja",
            "6/384",
            512,
            extra="ja",
            notes="XLM-RoBERTa (mMiniLMv2) with a sentencepiece tokenizer; the fastest v1.",
        ),
        Preset(
            "ja-small-v1",
            _JA + "small-v1",
            "ja",
            "12/384",
            512,
            extra="ja",
            notes="XLM-RoBERTa (mMiniLMv2-L12-H384) with a sentencepiece tokenizer.",
        ),
        Preset(
            "ja-base-v1",
            _JA + "base-v1",
            "ja",
            "12/768",
            512,
            extra="ja",
            notes="BERT with a MeCab tokenizer (fugashi + unidic-lite).",
        ),
        Preset(
            "ja-large-v1",
            _JA + "large-v1",
            "ja",
            "24/1024",
            512,
            extra="ja",
            notes="BERT with a MeCab tokenizer (fugashi + unidic-lite); the most accurate v1.",
        ),
        Preset(
            "ja-bge-v2-m3-v1",
            "hotchpotch/japanese-bge-reranker-v2-m3-v1",
            "ja",
            "24/1024",
            512,
            extra="ja",
            notes=(
                "bge-reranker-v2-m3 fine-tuned for Japanese; XLM-RoBERTa. Its card runs it at "
                "512 tokens; the model accepts up to 8192."
            ),
        ),
        Preset(
            "ja-tiny-v2",
            "hotchpotch/japanese-reranker-tiny-v2",
            "ja",
            "3/256",
            512,
            extra="ja",
            notes=_V2_NOTES,
        ),
        Preset(
            "ja-xsmall-v2",
            "hotchpotch/japanese-reranker-xsmall-v2",
            "ja",
            "10/256",
            512,
            extra="ja",
            notes=_V2_NOTES,
        ),
        Preset(
            "ja-small-v2",
            "hotchpotch/japanese-reranker-small-v2",
            "ja",
            "13/384",
            512,
            extra="ja",
            notes=_V2_NOTES,
        ),
        Preset(
            "ja-base-v2",
            "hotchpotch/japanese-reranker-base-v2",
            "ja",
            "19/512",
            512,
            extra="ja",
            notes=_V2_NOTES,
        ),
    )
}


def resolve_preset(
    model: str | os.PathLike[str], options: dict[str, Any]
) -> tuple[str, dict[str, Any]]:
    """Map a preset name to its hub id and recommended options; other names pass through.

    An ``os.PathLike`` is always a path (returned as a string), never a preset name.
    """
    if isinstance(model, os.PathLike):
        return os.fspath(model), options
    preset = PRESETS.get(model)
    if preset is None:
        return model, options
    defaults: dict[str, Any] = {"max_length": preset.max_length}
    if preset.activation != "auto":
        defaults["activation"] = preset.activation
    return preset.model, {**defaults, **options}


def suggest_preset(name: str) -> str | None:
    """The preset name or preset hub id closest to ``name``, for "did you mean" hints."""
    known = {key.lower(): key for preset in PRESETS.values() for key in (preset.name, preset.model)}
    matches = difflib.get_close_matches(name.lower(), known, n=1, cutoff=0.8)
    return known[matches[0]] if matches else None
