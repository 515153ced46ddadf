"""Where a model comes from: a hub id or a local path, checked before anything downloads.

Also the messages of a load that fails: a missing directory, an unreachable hub, a typo
in a hub id (with a "did you mean" for a near preset name).
"""

from __future__ import annotations

import importlib
import os
import re
from pathlib import Path

from rerank_plugins.errors import ModelLoadError

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


def load_error(model: str, err: BaseException, *, local_files_only: bool) -> ModelLoadError:
    """The ``ModelLoadError`` for a failed ``from_pretrained``, with the fix for its cause."""
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
