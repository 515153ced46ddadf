"""Export a cross-encoder to ONNX in a child process: trace, check, fuse, quantize, cache.

On a cache miss, :func:`run_export` starts ``python -m rerank_plugins.scorer._onnx_export``
(the optimizer peaks at about ten times the fp32 weights, memory the caller would otherwise
keep). The child loads the weights in fp32 with ``attn_implementation="eager"`` (a graph
exported from ``sdpa`` attention is one that onnxruntime's BERT optimizer cannot fuse), in
``.eval()`` mode (else dropout stays on in the graph and scores are silently wrong),
exports them with ``torch.onnx.export`` (BERT/RoBERTa/XLM-R with a last layer that computes
only the first token's row, all the classifier reads, without projecting keys and values
for every token), checks the graph against the unchanged torch model on other shapes than
the export's, fuses it with onnxruntime's transformer optimizer, and, with ``quantize``,
quantizes it to dynamic int8. Files are
written to a temporary directory and renamed into place, the manifest last, so concurrent
processes never read a half-written model.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rerank_plugins._optional import require
from rerank_plugins.errors import ModelLoadError
from rerank_plugins.scorer._loading import load_config_and_tokenizer, load_weights, uses_token_types
from rerank_plugins.scorer._onnx_cache import FORMAT, MANIFEST, complete
from rerank_plugins.scorer._packed import packed_encoder

logger = logging.getLogger(__name__)

_OPSET = 17
# The exported graph must match torch this closely (fp32, sigmoid-free logits) on new shapes.
_EXPORT_TOLERANCE = 1e-4


def run_export(
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


def export_model(
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
        export_model(
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


def _export(
    weights: Any, config: Any, directory: Path, *, input_names: tuple[str, ...], quantize: bool
) -> None:
    """Export (if needed), fuse and optionally quantize into ``directory``, atomically."""
    directory.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=directory.parent, prefix=".export-") as tmp:
        staging = Path(tmp)
        fused = directory / "model.onnx"
        if complete(directory, "model.onnx"):
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
        manifest = {"format": FORMAT, "opset": _OPSET, "inputs": list(input_names)}
        (staging / MANIFEST).write_text(json.dumps(manifest | {"files": files}))
        directory.mkdir(exist_ok=True)
        # os.replace is atomic: a reader sees the old file or the new one, never half of it.
        # The manifest goes last: until it lists a file, readers treat the entry as missing.
        for file in files:
            os.replace(staging / file, directory / file)
        os.replace(staging / MANIFEST, directory / MANIFEST)


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
            batch, _, hidden = hidden_states.shape
            attention = self.layer.attention.self
            first = hidden_states[:, :1]
            # [batch, heads, 1, head size]
            query = attention.query(first).view(batch, 1, heads, -1).transpose(1, 2)
            # Keys and values are never projected for every token: q.(W_k x + b_k) is
            # (q W_k).x plus a constant that softmax ignores, and the softmax-weighted sum
            # of W_v x + b_v is W_v (the weighted sum of x) + b_v, since the weights sum to 1.
            key_weight = attention.key.weight.view(heads, -1, hidden)  # [heads, head size, hidden]
            folded = torch.matmul(query, key_weight)[:, :, 0]  # [batch, heads, hidden]
            scores = torch.matmul(folded, hidden_states.transpose(1, 2)).unsqueeze(2)
            scores = scores * (hidden // heads) ** -0.5  # [batch, heads, 1, tokens]
            if attention_mask is not None:  # eager attention's additive [batch, 1, q, k] mask
                scores = scores + attention_mask[:, :, :1, :]
            mixed_tokens = torch.matmul(torch.softmax(scores, dim=-1)[:, :, 0], hidden_states)
            value_weight = attention.value.weight.view(heads, -1, hidden)
            context = torch.matmul(value_weight, mixed_tokens.unsqueeze(-1))[..., 0]
            context = context.reshape(batch, 1, hidden) + attention.value.bias
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
    """Fuse attention, LayerNorm and GELU with onnxruntime's transformer optimizer.

    Residual adds stay apart from their LayerNorm: onnxruntime's fused
    ``SkipLayerNormalization`` CPU kernel measured 7x slower than ``Add`` followed by
    ``LayerNormalization`` (5.1 vs 0.7 ns an element), 7-8% of a whole forward pass.
    """
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    heads = getattr(config, "num_attention_heads", 0) or 0
    hidden = getattr(config, "hidden_size", 0) or 0
    fusions = FusionOptions("bert")
    fusions.enable_skip_layer_norm = False
    fusions.enable_bias_skip_layer_norm = False
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimized = optimize_model(
                str(source),
                model_type="bert",
                num_heads=heads,
                hidden_size=hidden,
                optimization_options=fusions,
                opt_level=1,
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
