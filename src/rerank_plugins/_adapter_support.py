"""What both framework adapters share: choosing a scorer and checking their settings."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rerank_plugins._results import RankResult, Scorer

# CrossEncoderScorer options that are fields of neither adapter: queue and batching knobs of
# a shared scorer, not of one reranker. They are still accepted in ``scorer_options``.
SCORER_ONLY_OPTIONS = frozenset(
    {"max_wait_ms", "max_queue", "max_queue_pairs", "overlap_tokenization"}
)


class ScorerOptions(BaseModel):
    """The keyword options of ``get_scorer`` as adapter fields (mixed into both adapters).

    Only the options set explicitly to something other than their default are passed on,
    so a preset's recommended settings (and the shared scorer of ``model`` alone) stay in
    effect for the others. Defaults mirror
    :class:`~rerank_plugins.CrossEncoderScorer`'s; a test keeps the two in step.
    """

    # Validation errors would otherwise echo the whole input, ``token`` included.
    model_config = ConfigDict(hide_input_in_errors=True)

    revision: str | None = Field(default=None, description="Hub branch, tag or commit.")
    device: str = Field(default="auto", description="'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'.")
    dtype: str = Field(
        default="auto", description="'auto', 'float32', 'float16', 'bfloat16' or 'int8'."
    )
    backend: str = Field(default="auto", description="'auto', 'torch' or 'onnx'.")
    max_length: int | None = Field(default=None, description="Tokens per (query, passage) pair.")
    batch_size: int | None = Field(default=None, description="Most pairs per forward pass.")
    max_batch_tokens: int | None = Field(
        default=None, description="Most padded tokens per forward pass."
    )
    activation: str = Field(default="auto", description="'auto', 'sigmoid' or 'none'.")
    long_passages: str = Field(default="truncate", description="'truncate' or 'window'.")
    window_size: int | None = Field(default=None, description="Passage tokens per window.")
    window_stride: int | None = Field(default=None, description="Tokens between windows.")
    local_files_only: bool = Field(default=False, description="Never use the network.")
    trust_remote_code: bool = Field(default=False, description="Allow the repo's own code.")
    token: str | bool | None = Field(
        default=None, exclude=True, repr=False, description="Hugging Face token."
    )
    onnx_quantize: bool = Field(default=False, description="int8 ONNX model (backend='onnx').")

    @model_validator(mode="before")
    @classmethod
    def _reject_unknown_keywords(cls, data: Any) -> Any:
        """Name an unknown keyword instead of letting pydantic drop it (``device=`` was lost)."""
        if not isinstance(data, dict):
            return data
        known = set(cls.model_fields) | {
            field.alias for field in cls.model_fields.values() if field.alias
        }
        for name in data:
            if name not in known:
                close = difflib.get_close_matches(str(name), sorted(known), n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                msg = (
                    f"{cls.__name__} got an unknown keyword argument {name!r}.{hint} Other "
                    "get_scorer options go in scorer_options={...}."
                )
                raise ValueError(msg)
        return data

    def chosen_scorer_options(self, scorer_options: dict[str, Any]) -> dict[str, Any]:
        """Merge the explicitly set option fields into ``scorer_options``; a clash raises."""
        # A value equal to the default is left out too: a round trip through to_dict/from_dict
        # sets every field, and max_length=None must not override a preset's max_length.
        chosen = {
            name: getattr(self, name)
            for name in _OPTION_NAMES & self.model_fields_set
            if getattr(self, name) != ScorerOptions.model_fields[name].default
        }
        for name in sorted(chosen.keys() & scorer_options.keys()):
            msg = (
                f"{name} was given twice: {name}={chosen[name]!r} and scorer_options="
                f"{{{name!r}: {scorer_options[name]!r}}}. Pass it once."
            )
            raise ValueError(msg)
        return {**scorer_options, **chosen}


_OPTION_NAMES = frozenset(ScorerOptions.model_fields)


def resolve_scorer(model: str | None, scorer: Any, options: dict[str, Any]) -> Scorer:
    """Return ``scorer``, or the shared scorer of ``model``; exactly one of them must be given."""
    if scorer is not None:
        if model is not None:
            msg = "Pass either scorer=... or model=... (with scorer_options), not both."
            raise ValueError(msg)
        if options:
            shown = ", ".join(f"{name}={value!r}" for name, value in sorted(options.items()))
            msg = (
                f"Scorer options ({shown}) only apply when the adapter loads model=...; "
                "configure the scorer you pass instead, e.g. get_scorer(model, device=...)."
            )
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


def result_metadata(result: RankResult) -> dict[str, Any]:
    """The bookkeeping both adapters add to a kept document's metadata, besides its score."""
    metadata: dict[str, Any] = {}
    if result.span is not None:
        metadata["relevance_span"] = result.span
    if result.tokens is not None:
        metadata["context_tokens"] = result.tokens
    if result.duplicates:
        metadata["duplicates_merged"] = len(result.duplicates)
    return metadata
