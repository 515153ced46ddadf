"""int8 variants of an exported ONNX cross-encoder, for the agreement benchmark's attempts.

Each builder takes the fused fp32 graph that the scorer exported (``model.onnx``) and
writes one int8 graph beside the benchmark results:

- ``dynamic``: what ``dtype="int8"`` runs (per-channel int8 weights, activations
  quantized per batch at run time), built by the library itself.
- ``dynamic, FFN-out fp32``: the same with the feed-forward output matmuls (the input
  is the GELU output, whose long tail an 8-bit range cannot hold) kept in fp32.
- ``static``: activations quantized with ranges calibrated on in-domain pairs (train-split
  questions only), per-channel weights, QDQ format, FFN-out matmuls kept in fp32.
- ``smooth``: SmoothQuant-style per-channel scaling (alpha 0.5) of every quantized matmul's
  input, folded into the weights, with an explicit ``Mul`` on the activation, then dynamic.
- ``openvino_static``: NNCF's post-training int8 for OpenVINO (``nncf.quantize`` with the
  transformer preset: per-channel weights, activations calibrated on the same in-domain
  pairs, the ops it knows to be sensitive kept in float; optionally its SmoothQuant, or the
  FFN-out matmuls kept fp32), run by OpenVINO's CPU plugin (int8 kernels with VNNI).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

FFN_ACTIVATIONS = ("Gelu", "FastGelu", "BiasGelu")


def matmuls_after_gelu(model: Any) -> list[str]:
    """Names of the MatMul nodes that read a GELU output (the FFN output projections)."""
    gelu_outputs = {
        out for node in model.graph.node if node.op_type in FFN_ACTIVATIONS for out in node.output
    }
    return [
        node.name
        for node in model.graph.node
        if node.op_type == "MatMul" and node.input[0] in gelu_outputs
    ]


def dynamic(source: Path, target: Path, *, keep_ffn_out: bool) -> Path:
    """Dynamic int8 (per-channel weights), optionally keeping the FFN-out matmuls fp32."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    exclude = matmuls_after_gelu(onnx.load(str(source))) if keep_ffn_out else []
    quantize_dynamic(
        str(source),
        str(target),
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return target


class _Calibration:
    """Feeds tokenized (question, passage) batches to onnxruntime's calibrator."""

    def __init__(self, batches: Sequence[dict[str, Any]]) -> None:
        self._batches = iter(batches)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._batches, None)


def static(source: Path, target: Path, batches: Sequence[dict[str, Any]], method: str) -> Path:
    """Static int8 (QDQ, per-channel weights), ranges calibrated on ``batches``."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    exclude = matmuls_after_gelu(onnx.load(str(source)))
    quantize_static(
        str(source),
        str(target),
        _Calibration(batches),  # type: ignore[arg-type]
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=["MatMul"],
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=exclude,
        calibrate_method=getattr(CalibrationMethod, method),
        extra_options={
            "DefaultTensorType": onnx.TensorProto.FLOAT,
            "CalibPercentile": 99.99,
            "ActivationSymmetric": False,
        },
    )
    return target


def smooth(
    source: Path, target: Path, batches: Sequence[dict[str, Any]], *, alpha: float = 0.5
) -> Path:
    """SmoothQuant: ``x W = (x / s)(s W)`` per input channel, then dynamic int8.

    ``s_k = max|x_k|^alpha / max|W_k|^(1 - alpha)`` moves the activations' outlier channels
    into the weights, which are quantized per output channel and absorb them better. The
    division is an explicit ``Mul`` (BERT's post-LayerNorm residuals leave nowhere to fold
    it). FFN-out matmuls stay fp32 as in ``dynamic(keep_ffn_out=True)``.
    """
    import numpy as np
    import onnx
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    initializers = {init.name: init for init in model.graph.initializer}
    skip = set(matmuls_after_gelu(model))
    targets = [
        node
        for node in model.graph.node
        if node.op_type == "MatMul" and node.input[1] in initializers and node.name not in skip
    ]
    probe = onnx.load(str(source))
    known = {out.name for out in probe.graph.output}
    for name in {node.input[0] for node in targets} - known:
        probe.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [out.name for out in session.get_outputs()]
    peaks: dict[str, Any] = {}
    for batch in batches:
        for name, value in zip(names, session.run(names, batch), strict=True):
            if name in {node.input[0] for node in targets}:
                peak = np.abs(value.reshape(-1, value.shape[-1])).max(axis=0)
                peaks[name] = np.maximum(peaks.get(name, peak), peak)
    for index, node in enumerate(targets):
        weight = numpy_helper.to_array(initializers[node.input[1]])
        scale = peaks[node.input[0]] ** alpha / np.abs(weight).max(axis=1).clip(1e-5) ** (1 - alpha)
        scale = scale.clip(1e-2, 1e2).astype(np.float32)
        initializers[node.input[1]].CopyFrom(
            numpy_helper.from_array(weight * scale[:, None], node.input[1])
        )
        inverse = f"smooth_inv_{index}"
        model.graph.initializer.append(numpy_helper.from_array(1.0 / scale, inverse))
        scaled = f"{node.input[0]}_smoothed_{index}"
        model.graph.node.append(helper.make_node("Mul", [node.input[0], inverse], [scaled]))
        node.input[0] = scaled
    _topological_sort(model)
    smoothed = target.with_name(target.stem + ".fp32.onnx")
    onnx.save(model, str(smoothed))
    return dynamic(smoothed, target, keep_ffn_out=True)


def _topological_sort(model: Any) -> None:
    """Reorder the graph's nodes so that every input is produced before it is read."""
    graph = model.graph
    ready = {init.name for init in graph.initializer} | {inp.name for inp in graph.input} | {""}
    pending, ordered = list(graph.node), []
    while pending:
        rest = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            msg = "the graph has a cycle or a missing input"
            raise RuntimeError(msg)
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def openvino_static(
    source: Path,
    target: Path,
    batches: Sequence[dict[str, Any]],
    smooth_alpha: float | None,
    *,
    keep_ffn_out: bool = False,
) -> Path:
    """NNCF int8 of the fp32 export, saved as OpenVINO IR (``target`` ends in ``.xml``)."""
    import nncf
    import onnx
    import openvino as ov
    from nncf.quantization.advanced_parameters import (
        AdvancedQuantizationParameters,
        AdvancedSmoothQuantParameters,
    )

    advanced = AdvancedQuantizationParameters(
        smooth_quant_alphas=AdvancedSmoothQuantParameters(matmul=smooth_alpha or -1.0)
    )
    names = matmuls_after_gelu(onnx.load(str(source))) if keep_ffn_out else []
    quantized = nncf.quantize(
        ov.Core().read_model(str(source)),
        nncf.Dataset(list(batches)),
        ignored_scope=nncf.IgnoredScope(names=names, validate=False),
        model_type=nncf.ModelType.TRANSFORMER,
        subset_size=len(batches),
        advanced_parameters=advanced,
    )
    ov.save_model(quantized, str(target))
    return target
