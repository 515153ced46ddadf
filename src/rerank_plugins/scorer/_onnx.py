"""The ONNX Runtime backend: export a cross-encoder once, fuse it, optionally quantize it, run it.

``CrossEncoderScorer(model, backend="onnx")`` loads through :func:`load_onnx_cross_encoder`:

1. The config and tokenizer load as for the torch backend (same checks, same activation).
2. The export is looked up in a cache directory keyed by what identifies the weights: the
   resolved commit of a hub model, or a fingerprint of the contents of a local directory's
   config and weights (a retrained local model is exported again). An entry counts only if
   its manifest (``export.json``, written last) lists its files with their sizes; one that
   fails to load anyway is removed and exported again, once. If the cache directory cannot
   be written, ``backend="auto"`` runs torch at once and ``backend="onnx"`` exports to a
   temporary directory for this process (both warn, once per process).
3. On a miss, a child process (``python -m rerank_plugins.scorer._onnx``: the optimizer
   peaks at about ten times the fp32 weights, memory the caller would otherwise keep) loads
   the weights in fp32 with ``attn_implementation="eager"`` (a graph
   exported from ``sdpa`` attention is one that onnxruntime's BERT optimizer cannot fuse),
   in ``.eval()`` mode (else dropout stays on in the graph and scores are silently wrong),
   are exported with ``torch.onnx.export`` (BERT/RoBERTa/XLM-R with a last layer that
   computes only the first token's row, all the classifier reads), checked against the
   unchanged torch model on other shapes than the export's, fused with onnxruntime's
   transformer optimizer, and, with ``onnx_quantize=True``, quantized to dynamic int8.
   Files are written to a temporary directory and renamed into place, the manifest last,
   so concurrent processes never read a half-written model.

Dynamic int8 changes scores and can change rankings; measure it on your data first (see
``docs/guides/performance.md``). onnxruntime is imported only here, lazily.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rerank_plugins._optional import is_available, require
from rerank_plugins.errors import ModelLoadError
from rerank_plugins.scorer._loading import (
    LoadedModel,
    ModelFiles,
    head_settings,
    load_config_and_tokenizer,
    load_weights,
    uses_token_types,
)
from rerank_plugins.scorer._packed import covers, packed_encoder

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

CACHE_ENV = "RERANK_PLUGINS_CACHE_DIR"
# Bump when the export, fusion or quantization settings change, so old caches are not reused.
_FORMAT = 2
_OPSET = 17
# The exported graph must match torch this closely (fp32, sigmoid-free logits) on new shapes.
_EXPORT_TOLERANCE = 1e-4
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".msgpack", ".h5")
# backend="auto" exports models up to this size. The export peaks at ~10x the fp32 weights
# (BERT-base, 110M parameters: 4.3 GB for ~40 s, measured), in a child process.
_AUTO_MAX_PARAMETERS = 150_000_000
_export_lock = threading.Lock()
_MANIFEST = "export.json"
# Cache roots found unwritable in this process, and the temporary root used instead.
_unwritable: dict[Path, Path | None] = {}


def cache_root() -> Path:
    """Where exported models live: ``$RERANK_PLUGINS_CACHE_DIR`` or ``~/.cache/rerank-plugins``."""
    explicit = os.environ.get(CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser() / "onnx"
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base).expanduser() / "rerank-plugins" / "onnx"


def onnx_device(requested: str | None, resolved: str) -> str:
    """Where the ONNX backend runs: ``"auto"`` picks CUDA only if onnxruntime can use it.

    ``"auto"`` resolves to ``mps`` on Apple silicon and to ``cuda`` on a GPU machine even when
    only the CPU build of onnxruntime is installed; both run on the CPU instead. An explicit
    device is kept (and checked when the session starts).
    """
    if (requested or "auto").lower() != "auto":
        return resolved
    if resolved.startswith("cuda"):
        ort = require("onnxruntime", extra=None, feature="The ONNX backend")
        if "CUDAExecutionProvider" in ort.get_available_providers():
            return resolved
    return "cpu"


def cache_key(model: str, revision: str | None, files_dir: Path | None) -> str:
    """A directory name for this model: a readable slug plus a hash of what identifies it.

    A hub snapshot (``.../snapshots/<commit>``) is identified by its commit, whichever of its
    files are downloaded yet; a local directory by the contents of its config and weights;
    a model whose files were not found by its id and revision.
    """
    identity: dict[str, Any] = {"model": model, "format": _FORMAT}
    if files_dir is None:
        identity["revision"] = revision
    elif files_dir.parent.name == "snapshots":
        identity["commit"] = files_dir.name
    else:
        identity["content"] = _content_fingerprint(files_dir)
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    slug = re.sub(r"[^A-Za-z0-9._-]+", "--", model.strip("/~."))[-60:] or "model"
    return f"{slug}-{digest}"


def _content_fingerprint(directory: Path) -> str:
    """A hash of the names and bytes of a directory's config and weight files."""
    digest = hashlib.sha256()
    for path in sorted(directory.iterdir()):
        if path.is_file() and (path.suffix in _WEIGHT_SUFFIXES or path.name == "config.json"):
            digest.update(f"{path.name}\0{path.stat().st_size}\0".encode())
            with path.open("rb") as file:
                while chunk := file.read(1 << 20):
                    digest.update(chunk)
    return digest.hexdigest()


def _complete(directory: Path, name: str) -> bool:
    """Whether the cache entry's manifest lists ``name`` with the size the file has."""
    try:
        manifest = json.loads((directory / _MANIFEST).read_text())
        return bool(manifest["files"][name] == (directory / name).stat().st_size)
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _writable_root(root: Path, *, auto: bool) -> Path | None:
    """Where to export: ``root`` if it can be written, else a fallback.

    The fallback (remembered for the process, so the check and its warning happen once) is
    a temporary directory for ``backend="onnx"``, and None (use torch) for ``"auto"``.
    """
    if root not in _unwritable:
        try:
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=root):
                pass
            return root
        except OSError as err:
            logger.warning(
                "The ONNX cache directory %s is not writable (%s), so exports cannot be kept: "
                "set %s to a writable directory. Until then, %s.",
                root,
                err,
                CACHE_ENV,
                "backend='auto' uses torch"
                if auto
                else "backend='onnx' exports into a temporary directory once per process",
            )
            _unwritable[root] = None
    if auto:
        return None
    temporary = _unwritable[root]
    if temporary is None:
        temporary = _unwritable[root] = Path(tempfile.mkdtemp(prefix="rerank-plugins-onnx-"))
        atexit.register(shutil.rmtree, temporary, ignore_errors=True)
    return temporary


@dataclass(frozen=True, slots=True)
class _Output:
    logits: torch.Tensor


class OnnxCrossEncoder:
    """An onnxruntime session that is called like a transformers model: ``net(**inputs).logits``.

    Inputs are torch tensors on the CPU; outputs are fp32 torch tensors on the CPU.
    """

    def __init__(self, path: Path, *, device: str) -> None:
        import torch

        ort = require("onnxruntime", extra=None, feature="The ONNX backend")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers: list[Any] = ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                msg = (
                    f"backend='onnx' with device={device!r} needs onnxruntime's CUDA provider, "
                    "which this onnxruntime lacks. Install 'onnxruntime-gpu' instead of "
                    "'onnxruntime', or use backend='torch' on the GPU."
                )
                raise ValueError(msg)
            index = int(device.split(":", 1)[1]) if ":" in device else 0
            providers = [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
        elif device != "cpu":
            msg = f"backend='onnx' runs on 'cpu' or 'cuda', got device={device!r}."
            raise ValueError(msg)
        self.path = path
        self.device = torch.device("cpu")
        # One thread count for both backends: torch.set_num_threads / OMP_NUM_THREADS.
        options.intra_op_num_threads = torch.get_num_threads()
        self._session = ort.InferenceSession(str(path), options, providers=providers)
        self.input_names = tuple(node.name for node in self._session.get_inputs())

    def __call__(self, **inputs: torch.Tensor) -> _Output:
        """Run one padded batch; unknown inputs (e.g. unused ``token_type_ids``) are dropped."""
        import torch

        feed = {name: inputs[name].numpy() for name in self.input_names if name in inputs}
        (logits,) = self._session.run(["logits"], feed)
        return _Output(torch.from_numpy(logits))


def load_onnx_cross_encoder(
    model: str,
    files: ModelFiles,
    *,
    revision: str | None,
    device: str,
    quantize: bool,
    max_length: int | None,
    activation: str | None,
    local_files_only: bool,
    trust_remote_code: bool,
    token: str | bool | None = None,
    auto: bool = False,
) -> LoadedModel | None:
    """Load ``model`` as an onnxruntime session, exporting (and caching) it on first use.

    ``files`` come from :func:`load_config_and_tokenizer`. With ``auto``
    (``backend="auto"``), return None where the torch backend should run instead:
    onnxruntime is missing, the model is not a BERT/RoBERTa/XLM-R classifier of up to 150M
    parameters (the exports this module shortens and tests), or its export fails.
    """
    import torch

    if auto and not (is_available("onnxruntime") and is_available("onnx")):
        return None
    require("onnxruntime", extra=None, feature="The ONNX backend")
    require("onnx", extra=None, feature="The ONNX backend")
    common: dict[str, Any] = {
        "revision": revision,
        "local_files_only": local_files_only,
        "trust_remote_code": trust_remote_code,
        "token": token,
    }
    source, config, tokenizer = files
    if auto and not (_exportable(config) and _parameters(config) <= _AUTO_MAX_PARAMETERS):
        return None
    key = cache_key(model, revision, _files_dir(source, common))
    name = "model.int8.onnx" if quantize else "model.onnx"
    network = _open_or_export(
        model, source, common, cache_root() / key, name, quantize=quantize, device=device, auto=auto
    )
    if network is None:
        return None
    return LoadedModel(
        tokenizer=tokenizer,
        model=network,
        device=torch.device(device),
        dtype=torch.int8 if quantize else torch.float32,
        uses_token_types="token_type_ids" in network.input_names,
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


def _open_or_export(
    model: str,
    source: str,
    common: dict[str, Any],
    directory: Path,
    name: str,
    *,
    quantize: bool,
    device: str,
    auto: bool,
    retried: bool = False,
) -> OnnxCrossEncoder | None:
    """Open the cached export, exporting it first if it is missing or incomplete.

    An entry that fails to load (a corrupt file) is removed and exported again, once.
    Return None (with a warning) where ``auto`` should fall back to torch.
    """
    if not _complete(directory, name):
        with _export_lock:
            if not _complete(directory, name):
                root = _writable_root(directory.parent, auto=auto)
                if root is None:
                    return None
                directory = root / directory.name
                if not _complete(directory, name):
                    if (directory / name).exists():
                        logger.warning(
                            "The cached ONNX model %s is incomplete (an interrupted export?); "
                            "exporting it again.",
                            directory / name,
                        )
                    try:
                        _run_export(model, source, common, directory, quantize)
                    except ModelLoadError as err:
                        if not auto:
                            raise
                        logger.warning("%s; using the torch backend instead.", err)
                        return None
    path = directory / name
    logger.info("Loading the ONNX model %s", path)
    try:
        return OnnxCrossEncoder(path, device=device)
    except ValueError as err:  # a device onnxruntime cannot use: not the cache's fault
        if not auto:
            raise
        logger.warning("Could not load the ONNX model %s (%s); using torch.", path, err)
        return None
    except Exception as err:
        if not retried:
            logger.warning(
                "The cached ONNX model %s could not be loaded (%s: %s); removing it and "
                "exporting it again.",
                path,
                type(err).__name__,
                err,
            )
            shutil.rmtree(directory, ignore_errors=True)
            return _open_or_export(
                model,
                source,
                common,
                directory,
                name,
                quantize=quantize,
                device=device,
                auto=auto,
                retried=True,
            )
        if auto:
            logger.warning("Could not load the ONNX model %s (%s); using torch.", path, err)
            return None
        msg = f"The ONNX export of {model!r} at {path} could not be loaded: {err}"
        raise ModelLoadError(msg) from err


def _run_export(
    model: str, source: str, common: dict[str, Any], directory: Path, quantize: bool
) -> None:
    """Export ``model`` into ``directory`` in a child process; raise ``ModelLoadError`` on failure.

    onnxruntime's graph optimizer holds about ten copies of the weights at its peak, memory a
    long-lived caller would keep (the allocator does not give it back); a child process
    returns it all, and its failure, even an out-of-memory kill, leaves the caller running.
    """
    request = {
        "model": model,
        "source": source,
        "common": common,
        "directory": str(directory),
        "quantize": quantize,
    }
    logger.info("Exporting %s to ONNX in %s (once; it is cached).", model, directory)
    done = subprocess.run(
        [sys.executable, "-m", __name__],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode == 0:
        return
    lines = done.stderr.strip().splitlines()
    try:
        reason = json.loads(lines[-1])["error"]
    except (IndexError, ValueError, KeyError, TypeError):
        tail = " | ".join(lines[-3:]) or f"the export process ended with {done.returncode}"
        killed = done.returncode < 0 and -done.returncode == signal.SIGKILL
        reason = "the export process was killed (out of memory?)" if killed else tail
    msg = f"Exporting {model!r} to ONNX failed: {reason}"
    raise ModelLoadError(msg)


def _export_model(
    model: str, source: str, common: dict[str, Any], directory: Path, quantize: bool
) -> None:
    """Load the fp32 weights with eager attention and export them (the child's work)."""
    _, config, tokenizer = load_config_and_tokenizer(model, **common)
    weights = load_weights(model, source, config, attn_implementation="eager", **common)
    types = ("token_type_ids",) if uses_token_types(tokenizer, weights) else ()
    input_names = ("input_ids", "attention_mask", *types)
    _export(weights, config, directory, input_names=input_names, quantize=quantize)


def _main() -> int:
    """Child process entry: read the export request from stdin, report an error as JSON."""
    request = json.loads(sys.stdin.read())
    try:
        _export_model(
            request["model"],
            request["source"],
            request["common"],
            Path(request["directory"]),
            request["quantize"],
        )
    except Exception as err:
        sys.stderr.write(json.dumps({"error": f"{type(err).__name__}: {err}"}) + "\n")
        return 1
    return 0


def _exportable(config: Any) -> bool:
    """Tell whether ``backend="auto"`` exports this model: BERT/RoBERTa/XLM-R or ModernBERT.

    ModernBERT (the japanese-reranker v2 family) exports with eager attention: rotary
    positions and its local (sliding-window) attention masks trace to plain ONNX ops, and
    :func:`_check_against_torch` compares it on pairs longer than its local window.
    """
    auto_map = getattr(config, "auto_map", None) or {}
    modernbert = getattr(config, "model_type", None) == "modernbert"
    return covers(config) or (modernbert and "AutoModelForSequenceClassification" not in auto_map)


def _parameters(config: Any) -> int:
    """About how many weights a BERT-family or ModernBERT encoder of this config has."""
    hidden, layers = config.hidden_size, config.num_hidden_layers
    if getattr(config, "model_type", None) == "modernbert":  # rotary positions, gated MLP
        per_layer = 4 * hidden * hidden + 3 * hidden * config.intermediate_size
        return int(config.vocab_size * hidden + layers * per_layer)
    positions = config.max_position_embeddings + getattr(config, "type_vocab_size", 0)
    embeddings = (config.vocab_size + positions) * hidden
    return int(embeddings + layers * (4 * hidden * hidden + 2 * hidden * config.intermediate_size))


def _files_dir(source: str, common: dict[str, Any]) -> Path | None:
    """The local directory holding the model's files (a hub snapshot is named by its commit)."""
    if Path(source).is_dir():
        return Path(source)
    try:
        from transformers.utils.hub import cached_file

        found = cached_file(source, "config.json", **common)
    except (OSError, ValueError):
        return None
    return Path(found).parent if found else None


def _export(
    weights: Any, config: Any, directory: Path, *, input_names: tuple[str, ...], quantize: bool
) -> None:
    """Export (if needed), fuse and optionally quantize into ``directory``, atomically."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=".export-") as tmp:
        staging = Path(tmp)
        fused = directory / "model.onnx"
        if _complete(directory, "model.onnx"):
            shutil.copy2(fused, staging / "model.onnx")
        else:
            raw = staging / "raw.onnx"
            _torch_export(weights, raw, input_names)
            _check_against_torch(weights, raw, input_names)
            _fuse(raw, staging / "model.onnx", config)
            _check_against_torch(weights, staging / "model.onnx", input_names)
            raw.unlink()
        if quantize:
            _quantize(staging / "model.onnx", staging / "model.int8.onnx")
        files = {path.name: path.stat().st_size for path in staging.iterdir()}
        manifest = {"format": _FORMAT, "opset": _OPSET, "inputs": list(input_names)}
        (staging / _MANIFEST).write_text(json.dumps(manifest | {"files": files}))
        directory.mkdir(exist_ok=True)
        # os.replace is atomic: a reader sees the old file or the new one, never half of it.
        # The manifest goes last: until it lists a file, readers treat the entry as missing.
        for file in files:
            os.replace(staging / file, directory / file)
        os.replace(staging / _MANIFEST, directory / _MANIFEST)


def _logits_only(model: Any, input_names: tuple[str, ...]) -> Any:
    """Wrap ``model`` so the traced graph takes positional inputs and returns only the logits."""
    import torch

    class LogitsOnly(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            logits: torch.Tensor = self.model(**dict(zip(input_names, tensors, strict=True))).logits
            return logits

    return LogitsOnly().eval()


def _sample_inputs(
    input_names: tuple[str, ...], batch: int, width: int, vocab_size: int
) -> dict[str, Any]:
    """A padded batch with rows of different lengths, and the pair segments set."""
    import torch

    generator = torch.Generator().manual_seed(batch * 1000 + width)
    ids = torch.randint(min(5, vocab_size - 1), vocab_size, (batch, width), generator=generator)
    mask = torch.ones(batch, width, dtype=torch.long)
    for row in range(1, batch):
        mask[row, width - row * width // (batch + 1) :] = 0
    ids = ids * mask
    inputs = {"input_ids": ids, "attention_mask": mask}
    if "token_type_ids" in input_names:
        types = torch.zeros_like(ids)
        types[:, width // 3 :] = 1
        inputs["token_type_ids"] = types * mask
    return inputs


def _torch_export(weights: Any, path: Path, input_names: tuple[str, ...]) -> None:
    import torch

    weights = weights.float().eval()
    wrapper = _logits_only(weights, input_names)
    sample = _sample_inputs(input_names, 2, 16, weights.config.vocab_size)
    axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    axes["logits"] = {0: "batch"}
    with (
        _first_token_last_layer(weights),
        warnings.catch_warnings(),
        torch.inference_mode(False),
        torch.no_grad(),
    ):
        # The TorchScript exporter warns about traced Python values and its own deprecation;
        # _check_against_torch below is what proves the graph is right on other shapes.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            wrapper,
            tuple(sample[name] for name in input_names),
            str(path),
            input_names=list(input_names),
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


@contextmanager
def _first_token_last_layer(model: Any) -> Iterator[None]:
    """Within the block, the last encoder layer computes only the first token's row.

    The classifier reads only that row, so the logits are the same (the export check
    compares with the unchanged model) and the graph skips most of a layer's work. Applies
    to the models :func:`~rerank_plugins.scorer._packed.packed_encoder` covers.
    """
    if packed_encoder(model) is None:
        yield
        return
    layers = getattr(model, model.base_model_prefix).encoder.layer
    original = layers[-1]
    layers[-1] = _first_token_layer(original, model.config.num_attention_heads)
    try:
        yield
    finally:
        layers[-1] = original


def _first_token_layer(layer: Any, heads: int) -> Any:
    """A BERT layer that returns only the first position: ``[batch, 1, hidden]``."""
    import torch
    import transformers

    # transformers 4 layers return a tuple, transformers 5 layers a tensor.
    returns_tuple = int(transformers.__version__.split(".")[0]) < 5

    class FirstTokenLayer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = layer

        def forward(
            self,
            hidden_states: torch.Tensor,
            attention_mask: torch.Tensor | None = None,
            *args: Any,
            **kwargs: Any,
        ) -> Any:
            batch, width, hidden = hidden_states.shape
            attention = self.layer.attention.self
            first = hidden_states[:, :1]
            query = attention.query(first).view(batch, 1, heads, -1).transpose(1, 2)
            key = attention.key(hidden_states).view(batch, width, heads, -1).transpose(1, 2)
            value = attention.value(hidden_states).view(batch, width, heads, -1).transpose(1, 2)
            scores = torch.matmul(query, key.transpose(-1, -2)) * (hidden // heads) ** -0.5
            if attention_mask is not None:  # eager attention's additive [batch, 1, q, k] mask
                scores = scores + attention_mask[:, :, :1, :]
            context = torch.matmul(torch.softmax(scores, dim=-1), value)
            context = context.transpose(1, 2).reshape(batch, 1, hidden)
            mixed = self.layer.attention.output(context, first)
            out = self.layer.output(self.layer.intermediate(mixed), mixed)
            return (out,) if returns_tuple else out

    return FirstTokenLayer()


def _check_against_torch(weights: Any, path: Path, input_names: tuple[str, ...]) -> None:
    """Compare the graph with torch on shapes unlike the export's; raise if they differ."""
    import numpy as np
    import torch

    ort = require("onnxruntime", extra=None, feature="The ONNX backend")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    shapes = [(1, 7), (5, 40)]
    local = getattr(weights.config, "local_attention", None)
    if local:  # ModernBERT: rows that reach past the local (sliding-window) attention
        shapes.append((2, min(2 * local + 9, weights.config.max_position_embeddings)))
    for batch, width in shapes:
        sample = _sample_inputs(input_names, batch, width, weights.config.vocab_size)
        with torch.no_grad():
            expected = weights(**sample).logits.float().numpy()
        (got,) = session.run(["logits"], {k: v.numpy() for k, v in sample.items()})
        error = float(np.max(np.abs(got - expected)))
        if not error <= _EXPORT_TOLERANCE:
            msg = (
                f"The ONNX export of this model does not reproduce torch (max logit difference "
                f"{error:.2e} on a batch of {batch}x{width}). Use backend='torch' for it, and "
                "report the model id to rerank-plugins."
            )
            raise ModelLoadError(msg)


def _fuse(source: Path, target: Path, config: Any) -> None:
    """Fuse attention, LayerNorm and GELU with onnxruntime's transformer optimizer."""
    from onnxruntime.transformers.optimizer import optimize_model

    heads = getattr(config, "num_attention_heads", 0) or 0
    hidden = getattr(config, "hidden_size", 0) or 0
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimized = optimize_model(
                str(source), model_type="bert", num_heads=heads, hidden_size=hidden, opt_level=1
            )
        optimized.save_model_to_file(str(target))
    except Exception as err:  # fusion is an optimisation: an unfusable graph still runs
        logger.warning("onnxruntime could not fuse this model (%s); using the plain export.", err)
        shutil.copy2(source, target)
        return
    logger.info("Fused ONNX graph: %s", optimized.get_fused_operator_statistics())


def _quantize(source: Path, target: Path) -> None:
    """Dynamic int8 quantization of the MatMul weights (activations quantized at run time)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(
        str(source),
        str(target),
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        weight_type=QuantType.QInt8,
        # The fused ops (com.microsoft domain) defeat shape inference; their outputs are fp32.
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


if __name__ == "__main__":
    raise SystemExit(_main())
