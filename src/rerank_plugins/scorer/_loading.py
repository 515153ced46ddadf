"""The loading steps both backends share: config and tokenizer, weights, head settings.

:func:`load_config_and_tokenizer` runs first (in the scorer) and rejects what is not a
cross-encoder before any weights load; the torch backend then loads the weights with
:func:`load_weights`, the ONNX backend's export child process too.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rerank_plugins.errors import MissingDependencyError, ModelLoadError
from rerank_plugins.scorer._activation import resolve_activation
from rerank_plugins.scorer._model_source import check_hub_reachable, load_error

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from rerank_plugins.scorer._backend import LoadRequest, ModelFiles

# Tokenizer dependencies that the Japanese models need; each maps to the extra that installs it.
_TOKENIZER_DEPENDENCIES = (
    "fugashi",
    "unidic_lite",
    "unidic",
    "ipadic",
    "sentencepiece",
    "protobuf",
)


def _missing_tokenizer_dependency(err: ImportError) -> str | None:
    text = f"{err} {getattr(err, 'name', '') or ''}".lower()
    return next((dep for dep in _TOKENIZER_DEPENDENCIES if dep in text), None)


def load_config_and_tokenizer(
    model: str,
    *,
    revision: str | None,
    local_files_only: bool,
    trust_remote_code: bool,
    token: str | bool | None,
) -> ModelFiles:
    """Return (source, config, tokenizer); raise ``ModelLoadError`` if it is not a cross-encoder.

    ``source`` is the expanded local path when ``model`` is one, else the hub id.
    """
    from transformers import AutoConfig, AutoTokenizer

    local = Path(model).expanduser()
    source = str(local) if local.exists() else model
    if not local.exists() and not local_files_only:
        check_hub_reachable(model, revision=revision, token=token)
    common = hub_options(revision, local_files_only, trust_remote_code, token)
    try:
        config = AutoConfig.from_pretrained(source, **common)
        tokenizer = AutoTokenizer.from_pretrained(source, **common)
    except ImportError as err:
        dependency = _missing_tokenizer_dependency(err)
        if dependency is None:
            raise
        msg = (
            f"The tokenizer of {model!r} needs {dependency!r}, which is not installed. "
            'Install it with: pip install "rerank-plugins[ja]"'
        )
        raise MissingDependencyError(msg, name=dependency) from err
    except (OSError, ValueError) as err:
        raise load_error(model, err, local_files_only=local_files_only) from err

    architectures = getattr(config, "architectures", None) or []
    if architectures and not any(a.endswith("ForSequenceClassification") for a in architectures):
        msg = (
            f"{model!r} is not a cross-encoder: its architecture is {architectures[0]!r}, not a "
            "*ForSequenceClassification model. Use a reranker such as "
            "'cross-encoder/ms-marco-MiniLM-L6-v2', or fine-tune a classification head first."
        )
        raise ModelLoadError(msg)
    if config.num_labels not in (1, 2):
        msg = (
            f"{model!r} has a classification head with {config.num_labels} labels; a cross-encoder "
            "reranker has 1 (a relevance logit) or 2 (irrelevant/relevant)."
        )
        raise ModelLoadError(msg)
    return source, config, tokenizer


def load_weights(
    model: str,
    source: str,
    config: Any,
    *,
    revision: str | None,
    local_files_only: bool,
    trust_remote_code: bool,
    token: str | bool | None,
    attn_implementation: str | None = None,
) -> PreTrainedModel:
    """Load the model's weights on CPU in their saved dtype; reject a missing classifier head."""
    from transformers import AutoModelForSequenceClassification

    common = hub_options(revision, local_files_only, trust_remote_code, token)
    if attn_implementation is not None:
        common["attn_implementation"] = attn_implementation
    try:
        loaded, info = AutoModelForSequenceClassification.from_pretrained(
            source, config=config, output_loading_info=True, **common
        )
    except (OSError, ValueError) as err:
        raise load_error(model, err, local_files_only=local_files_only) from err
    head_missing = [k for k in info.get("missing_keys", ()) if "classifier" in k or "score" in k]
    if head_missing:
        msg = (
            f"{model!r} is not a cross-encoder: its checkpoint has no trained classification head "
            f"(missing {sorted(head_missing)[:3]}), so its scores would be random. Use a reranker "
            "checkpoint such as 'cross-encoder/ms-marco-MiniLM-L6-v2'."
        )
        raise ModelLoadError(msg)
    model_out: PreTrainedModel = loaded
    return model_out


def hub_options(
    revision: str | None, local_files_only: bool, trust_remote_code: bool, token: str | bool | None
) -> dict[str, Any]:
    """The keyword arguments every ``from_pretrained`` call gets."""
    return {
        "revision": revision,
        "local_files_only": local_files_only,
        "trust_remote_code": trust_remote_code,
        "token": token,
    }


def saved_activation(
    source: str, *, revision: str | None, local_files_only: bool, token: str | bool | None
) -> str | None:
    """The activation sentence-transformers saved beside the model, if it saved one."""
    import json

    from transformers.utils.hub import cached_file

    try:
        path = cached_file(
            source,
            "config_sentence_transformers.json",
            _raise_exceptions_for_missing_entries=False,
            _raise_exceptions_for_connection_errors=False,
            revision=revision,
            local_files_only=local_files_only,
            token=token,
        )
    except OSError:
        return None
    if path is None:
        return None
    with open(path, encoding="utf-8") as file:
        value = json.load(file).get("activation_fn")
    return value if isinstance(value, str) else None


def head_settings(request: LoadRequest) -> dict[str, Any]:
    """The ``max_length``, ``activation`` and ``num_labels`` of a LoadedModel, for any backend."""
    source, config, tokenizer = request.files
    saved = saved_activation(
        source,
        revision=request.revision,
        local_files_only=request.local_files_only,
        token=request.token,
    )
    return {
        "max_length": resolve_max_length(request.max_length, tokenizer, config),
        "activation": resolve_activation(request.activation, config, saved),
        "num_labels": config.num_labels,
    }


def resolve_max_length(requested: int | None, tokenizer: Any, config: Any) -> int:
    """Explicit value > tokenizer's ``model_max_length`` > positions; never past positions."""
    positions = getattr(config, "max_position_embeddings", None)
    if positions is not None and getattr(config, "model_type", "") in {"xlm-roberta", "roberta"}:
        positions -= (config.pad_token_id or 0) + 1
    limit = positions or 512
    if requested is not None:
        if not isinstance(requested, int) or isinstance(requested, bool) or requested < 8:
            msg = f"max_length must be an int >= 8, got {requested!r}."
            raise ValueError(msg)
        if requested > limit:
            msg = f"max_length={requested} exceeds the model's {limit} position embeddings."
            raise ValueError(msg)
        return requested
    from_tokenizer = getattr(tokenizer, "model_max_length", None)
    if isinstance(from_tokenizer, int) and 0 < from_tokenizer < 100_000:
        return min(from_tokenizer, limit)
    return limit


def uses_token_types(tokenizer: Any, network: Any) -> bool:
    """Tell whether the model reads segment ids (``token_type_ids``) for the passage.

    transformers 5 dropped ``token_type_ids`` from the default ``model_input_names`` of
    Python tokenizers, so ``BertJapaneseTokenizer`` (the MeCab tokenizer of
    ``japanese-reranker-cross-encoder-base-v1``/``large-v1``) no longer returns them,
    although those BERT models were trained with them (transformers 4 sent them). A model
    with a segment embedding that accepts them gets them.
    """
    if "token_type_ids" in tokenizer.model_input_names:
        return True
    config = getattr(network, "config", None)
    forward = getattr(network, "forward", None)
    if getattr(config, "type_vocab_size", 1) < 2 or not callable(forward):
        return False
    return "token_type_ids" in inspect.signature(forward).parameters
