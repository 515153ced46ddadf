"""What both framework adapters share: choosing a scorer, their option fields and checks."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from rerank_plugins._context import DEFAULT_NEAR_DUPLICATE_THRESHOLD, ContextOptions, Order
from rerank_plugins._results import RankResult, Scorer, check_selection
from rerank_plugins._tokens import LengthFunction

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
    backend: str = Field(default="auto", description="'auto', 'torch', 'onnx' or 'openvino'.")
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


class ContextFields(BaseModel):
    """The selection and context options of ``rank`` as adapter fields (mixed into both).

    Each adapter adds its own token counter field (LangChain's ``length_function``,
    LlamaIndex's ``tokenizer``) and passes it to :meth:`_context_options`, which checks
    everything with :meth:`ContextOptions.create <rerank_plugins._context.ContextOptions.create>`.
    """

    top_n: int | None = Field(default=3, description="How many to keep; None keeps all, reordered.")
    score_threshold: float | None = Field(
        default=None, description="Drop those scoring below this (before top_n)."
    )
    max_context_tokens: int | None = Field(
        default=None, description="Token budget of the kept documents; None: no budget."
    )
    deduplicate: bool = Field(
        default=False, description="Drop exact and near-duplicate documents before scoring."
    )
    near_duplicate_threshold: float | None = Field(
        default=DEFAULT_NEAR_DUPLICATE_THRESHOLD,
        description="Shingle containment that makes a near-duplicate; None: exact copies only.",
    )
    order: Order = Field(
        default="relevance", description="'relevance' or 'long_context' (best first and last)."
    )

    @field_validator("top_n", "score_threshold")
    @classmethod
    def _check_selection(cls, value: float | None, info: ValidationInfo) -> float | None:
        """Check these two as fields: they then fail before the adapter loads its model.

        :meth:`_context_options` checks them again, with the other context options, once
        the scorer (whose tokenizer may be the default counter) is known.
        """
        if info.field_name == "top_n":
            check_selection(value, None)
        else:
            check_selection(None, value)
        return value

    @property
    def _reports(self) -> bool:
        """Whether a call has a context report to send (duplicates or a budget in play)."""
        return self.deduplicate or self.max_context_tokens is not None

    def _context_options(
        self,
        *,
        length_function: LengthFunction | str | None,
        default_length_function: LengthFunction | None = None,
    ) -> ContextOptions:
        """The checked options, with the adapter's token counter and its default."""
        return ContextOptions.create(
            top_n=self.top_n,
            score_threshold=self.score_threshold,
            max_context_tokens=self.max_context_tokens,
            length_function=length_function,
            default_length_function=default_length_function,
            deduplicate=self.deduplicate,
            near_duplicate_threshold=self.near_duplicate_threshold,
            order=self.order,
        )


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
