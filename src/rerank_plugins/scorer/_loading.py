"""Resolve device and dtype; load a cross-encoder's tokenizer and model from a hub id or path."""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rerank_plugins.errors import MissingDependencyError, ModelLoadError

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from rerank_plugins.scorer._onnx import OnnxCrossEncoder

logger = logging.getLogger(__name__)

# The name of an activation: "none" or one of _ACTIVATION_CLASSES, lowercase ("sigmoid", "tanh").
Activation = str

_DTYPES = {
    "float32": "float32",
    "fp32": "float32",
    "float16": "float16",
    "fp16": "float16",
    "half": "float16",
    "bfloat16": "bfloat16",
    "bf16": "bfloat16",
    "int8": "int8",
}
# The torch.nn activations a cross-encoder can be saved with, by the name of the ``activation``
# option. sentence-transformers saves the class path (``fullname``, e.g.
# "torch.nn.modules.activation.Tanh") and builds it with no arguments; these are the elementwise
# torch.nn activations that take none. Only these classes are ever built: a class named in a
# config is never imported. (Softmax and friends are not elementwise; RReLU is random.)
_ACTIVATION_CLASSES: dict[str, str] = {
    "none": "Identity",
    "sigmoid": "Sigmoid",
    "tanh": "Tanh",
    **{
        name.lower(): name
        for name in (
            *("ReLU", "ReLU6", "LeakyReLU", "PReLU", "ELU", "CELU", "SELU", "GELU", "SiLU"),
            *("Mish", "Softplus", "Softsign", "Hardtanh", "Hardsigmoid", "Hardswish"),
            *("Hardshrink", "Softshrink", "Tanhshrink", "LogSigmoid"),
        )
    },
}
ACTIVATIONS: tuple[str, ...] = tuple(_ACTIVATION_CLASSES)
# Tokenizer dependencies that the Japanese models need; each maps to the extra that installs it.
_TOKENIZER_DEPENDENCIES = (
    "fugashi",
    "unidic_lite",
    "unidic",
    "ipadic",
    "sentencepiece",
    "protobuf",
)


def resolve_device(device: str | None) -> str:
    """Turn ``"auto"`` into ``cuda`` > ``mps`` > ``cpu``; check that an explicit device exists."""
    import torch

    requested = (device or "auto").lower()
    if requested == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    kind = requested.split(":", 1)[0]
    if kind == "cuda" and not torch.cuda.is_available():
        msg = (
            f"device={device!r} was requested but CUDA is not available. "
            "Use device='auto' or 'cpu'."
        )
        raise ValueError(msg)
    if kind == "mps" and not torch.backends.mps.is_available():
        msg = (
            f"device={device!r} was requested but MPS is not available. Use device='auto' or 'cpu'."
        )
        raise ValueError(msg)
    if kind not in {"cpu", "cuda", "mps"}:
        msg = f"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got {device!r}."
        raise ValueError(msg)
    return requested


def resolve_dtype(dtype: str | None, device: str) -> str:
    """Turn ``"auto"`` into bf16/fp16 on GPUs and fp32 on CPU; normalise aliases.

    ``"int8"`` is returned as is: the scorer runs it on ONNX Runtime, never through torch.
    """
    requested = (dtype or "auto").lower().removeprefix("torch.")
    if requested == "auto":
        if device.startswith("cuda"):
            import torch

            return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"
        return "float16" if device == "mps" else "float32"
    if requested not in _DTYPES:
        msg = f"dtype must be 'auto', 'float32', 'float16', 'bfloat16' or 'int8', got {dtype!r}."
        raise ValueError(msg)
    return _DTYPES[requested]


def resolve_activation(requested: str | None, config: Any, saved: str | None = None) -> Activation:
    """Pick the activation: explicit argument > the saved sentence-transformers choice > sigmoid.

    ``saved`` is the ``activation_fn`` of ``config_sentence_transformers.json``
    (sentence-transformers >= 5); older versions kept it in ``config.json``. A saved class
    outside the allow-list (:data:`ACTIVATIONS`) raises ``ModelLoadError`` naming it.
    """
    choice = (requested or "auto").lower()
    if choice in _ACTIVATION_CLASSES:
        return choice
    if choice != "auto":
        names = ", ".join(repr(name) for name in ("auto", *ACTIVATIONS))
        msg = f"activation must be one of {names}, got {requested!r}."
        raise ValueError(msg)
    if config.num_labels == 2:
        # A 2-logit head scores with the probability of the relevant class (label 1).
        return "sigmoid"
    saved = (
        saved
        or (getattr(config, "sentence_transformers", None) or {}).get("activation_fn")
        or getattr(config, "sbert_ce_default_activation_function", None)
    )
    if saved is None:
        return "sigmoid"
    name = _activation_of_class(saved)
    if name is None:
        msg = (
            f"The model was saved with the activation {saved!r}, which rerank-plugins does not "
            "build: it runs only these torch.nn activations and never imports a class named in "
            f"a config: {', '.join(_ACTIVATION_CLASSES.values())}. Choose one explicitly, e.g. "
            "activation='sigmoid' or activation='none' (raw logits)."
        )
        raise ModelLoadError(msg)
    return name


def _activation_of_class(path: str) -> Activation | None:
    """The activation a saved class path names (``torch.nn.Tanh`` or its full module path)."""
    for name, cls in _ACTIVATION_CLASSES.items():
        module = "linear" if cls == "Identity" else "activation"
        if path in (f"torch.nn.{cls}", f"torch.nn.modules.{module}.{cls}"):
            return name
    return None


def activation_function(activation: Activation) -> torch.nn.Module | None:
    """The torch module that applies ``activation`` to fp32 logits; None for ``"none"``."""
    import torch

    if activation == "none":
        return None
    module: torch.nn.Module = getattr(torch.nn, _ACTIVATION_CLASSES[activation])()
    return module.eval()


# What loads before the weights: (source, config, tokenizer), from load_config_and_tokenizer.
ModelFiles = tuple[str, Any, "PreTrainedTokenizerBase"]


@dataclass(frozen=True, slots=True)
class LoadedModel:
    """A tokenizer and model ready for inference, with the settings they were resolved to."""

    tokenizer: PreTrainedTokenizerBase
    model: PreTrainedModel | OnnxCrossEncoder
    device: torch.device
    dtype: torch.dtype
    max_length: int
    activation: Activation
    num_labels: int
    uses_token_types: bool


# A Hugging Face hub repo id: "owner/name" (letters, digits, "-", "_", ".").
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]*[A-Za-z0-9_]")
_FIX = (
    "Pass the path of a saved model directory instead (--model /path/to/dir on the command "
    "line), or download the model once with network access: local_files_only=True "
    "(--local-files-only) then loads it from the Hugging Face cache."
)


def _looks_like_path(model: str) -> bool:
    return model.startswith((".", "/", "~")) or os.sep in model.strip("/").replace("/", "", 1)


def _reason(err: BaseException) -> str:
    """``err`` as one line without a trailing period, to embed in a sentence."""
    lines = str(err).strip().splitlines()
    text = " ".join(line.strip() for line in lines).rstrip(".") or type(err).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def model_name(model: object) -> str:
    """Return ``model`` (a hub id or a path, ``str`` or ``os.PathLike``) as a string.

    Raises ``ModelLoadError`` at once, before any download is tried, for what can be
    neither: a path that does not exist or is a file, or a name that is not of the hub's
    ``owner/name`` form (with a "did you mean" for a near preset name).
    """
    from rerank_plugins.presets import PRESETS, suggest_preset

    is_path = isinstance(model, os.PathLike)
    name = os.fspath(model) if isinstance(model, os.PathLike) else model
    if not isinstance(name, str) or not name.strip():
        msg = f"model must be a hub id, a local path or a preset name, got {model!r}."
        raise ValueError(msg)
    path = Path(name).expanduser()
    if path.is_file():
        folder = f" (pass its folder {str(path.parent)!r})" if path.name == "config.json" else ""
        msg = (
            f"Could not load model {name!r}: it is a file; a model directory is needed, the "
            f"folder with config.json, the weights and the tokenizer files{folder}."
        )
        raise ModelLoadError(msg)
    if path.is_dir():
        return name
    if is_path or _looks_like_path(name):
        msg = f"Could not load model {name!r}: no such directory. Pass the path of a saved model."
        raise ModelLoadError(msg)
    if _HUB_ID.fullmatch(name) and ".." not in name and "--" not in name:
        return name
    if name in PRESETS:
        msg = (
            f"{name!r} is a preset name: load it with get_scorer({name!r}), or pass its hub id "
            f"{PRESETS[name].model!r} to CrossEncoderScorer."
        )
        raise ModelLoadError(msg)
    suggestion = suggest_preset(name)
    hint = f" Did you mean {suggestion!r}?" if suggestion else ""
    msg = (
        f"Unknown model {name!r}: not a preset, an existing directory or a Hugging Face hub id "
        f"of the form 'owner/name'.{hint} `rerank-plugins models` lists the presets."
    )
    raise ModelLoadError(msg)


def _hub_offline() -> bool:
    from huggingface_hub import constants

    is_offline = getattr(constants, "is_offline_mode", None)  # huggingface_hub >= 1.0
    return bool(is_offline() if callable(is_offline) else constants.HF_HUB_OFFLINE)


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection failures of huggingface_hub's HTTP clients (OSError covers requests')."""
    errors: list[type[BaseException]] = [OSError]
    for module in ("httpx2", "httpx"):
        try:
            errors.append(importlib.import_module(module).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)


def check_hub_reachable(model: str, *, revision: str | None, token: str | bool | None) -> None:
    """Fail within seconds when ``model`` must come from the hub and the hub cannot be reached.

    transformers retries an unreachable hub for ~25 s (huggingface_hub's backoff) before
    failing with a long traceback. A model already in the cache is left to transformers,
    which falls back to the cache without retrying; otherwise offline mode
    (``HF_HUB_OFFLINE``) fails at once, and a single HEAD request without retries (within
    ``HF_HUB_ETAG_TIMEOUT``) tells whether the hub answers.
    """
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url, try_to_load_from_cache
    from huggingface_hub.errors import HfHubHTTPError

    try:
        cached = try_to_load_from_cache(model, "config.json", revision=revision)
    except ValueError as err:  # huggingface_hub's HFValidationError: not a valid repo id
        msg = f"Could not load model {model!r}: not a valid Hugging Face hub id ({_reason(err)})."
        raise ModelLoadError(msg) from err
    if isinstance(cached, str):
        return
    if _hub_offline():
        msg = (
            f"Could not load model {model!r}: offline mode is on (HF_HUB_OFFLINE is set) and "
            f"the model is not in the local Hugging Face cache. {_FIX}"
        )
        raise ModelLoadError(msg)
    url = hf_hub_url(model, "config.json", revision=revision)
    try:
        get_hf_file_metadata(url, token=token, timeout=constants.HF_HUB_ETAG_TIMEOUT)
    except HfHubHTTPError:
        return  # the hub answered (404, 401...): from_pretrained explains it
    except _network_errors() as err:
        msg = (
            f"Could not load model {model!r}: the Hugging Face hub cannot be reached "
            f"({type(err).__name__}: {_reason(err)}) and the model is not in the local cache. "
            f"{_FIX}"
        )
        raise ModelLoadError(msg) from err


def _load_error(model: str, err: BaseException, *, local_files_only: bool) -> ModelLoadError:
    reason = _reason(err)
    if Path(model).expanduser().is_dir():
        msg = (
            f"Could not load model from the directory {model!r}: {reason}. It must hold a saved "
            "sequence-classification model (config.json, weights) and its tokenizer files."
        )
    elif local_files_only:
        msg = (
            f"Could not load model {model!r} from the local Hugging Face cache "
            f"(local_files_only=True): {reason}. Download it first on a machine with network "
            "access, or pass the path of a local copy."
        )
    else:
        from rerank_plugins.presets import suggest_preset

        suggestion = suggest_preset(model)
        hint = f" Did you mean {suggestion!r}?" if suggestion and suggestion != model else ""
        msg = (
            f"Could not fetch model {model!r} from the Hugging Face hub: {reason}.{hint} Check "
            "the id's spelling, and that you are logged in for private repos. Offline, pass the "
            "path of a local copy, or set local_files_only=True to use the local cache."
        )
    return ModelLoadError(msg)


def _missing_tokenizer_dependency(err: ImportError) -> str | None:
    text = f"{err} {getattr(err, 'name', '') or ''}".lower()
    return next((dep for dep in _TOKENIZER_DEPENDENCIES if dep in text), None)


def load_cross_encoder(
    model: str,
    files: ModelFiles,
    *,
    revision: str | None,
    device: str,
    dtype: str,
    max_length: int | None,
    activation: str | None,
    local_files_only: bool,
    trust_remote_code: bool,
    token: str | bool | None = None,
    attn_implementation: str | None = None,
) -> LoadedModel:
    """Load a cross-encoder's weights; raise ``ModelLoadError`` if it is not one.

    ``files`` come from :func:`load_config_and_tokenizer`. ``attn_implementation`` is passed
    to ``from_pretrained`` (``None``: transformers' choice, ``sdpa`` where supported; the
    ONNX exporter needs ``"eager"``).
    """
    import torch

    source, config, tokenizer = files
    loaded: Any = load_weights(
        model,
        source,
        config,
        revision=revision,
        local_files_only=local_files_only,
        trust_remote_code=trust_remote_code,
        token=token,
        attn_implementation=attn_implementation,
    )
    torch_device = torch.device(device)
    torch_dtype = getattr(torch, dtype)
    loaded = loaded.to(device=torch_device, dtype=torch_dtype).eval()
    return LoadedModel(
        tokenizer=tokenizer,
        model=loaded,
        device=torch_device,
        dtype=torch_dtype,
        uses_token_types=uses_token_types(tokenizer, loaded),
        **head_settings(
            source,
            config,
            tokenizer,
            max_length=max_length,
            activation=activation,
            revision=revision,
            local_files_only=local_files_only,
            token=token,
        ),
    )


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
    common = _common_kwargs(revision, local_files_only, trust_remote_code, token)
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
        raise _load_error(model, err, local_files_only=local_files_only) from err

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

    common = _common_kwargs(revision, local_files_only, trust_remote_code, token)
    if attn_implementation is not None:
        common["attn_implementation"] = attn_implementation
    try:
        loaded, info = AutoModelForSequenceClassification.from_pretrained(
            source, config=config, output_loading_info=True, **common
        )
    except (OSError, ValueError) as err:
        raise _load_error(model, err, local_files_only=local_files_only) from err
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


def _common_kwargs(
    revision: str | None, local_files_only: bool, trust_remote_code: bool, token: str | bool | None
) -> dict[str, Any]:
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


def head_settings(
    source: str,
    config: Any,
    tokenizer: Any,
    *,
    max_length: int | None,
    activation: str | None,
    revision: str | None,
    local_files_only: bool,
    token: str | bool | None,
) -> dict[str, Any]:
    """The ``max_length``, ``activation`` and ``num_labels`` of a LoadedModel, for any backend."""
    saved = saved_activation(
        source, revision=revision, local_files_only=local_files_only, token=token
    )
    return {
        "max_length": resolve_max_length(max_length, tokenizer, config),
        "activation": resolve_activation(activation, config, saved),
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
