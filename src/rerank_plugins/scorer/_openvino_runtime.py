"""The OpenVINO backend: the ONNX export compiled by OpenVINO, for bf16 on CPUs that have it.

``CrossEncoderScorer(model, dtype="bfloat16")`` on the CPU loads through
:class:`OpenVinoLoader` where OpenVINO is installed (``rerank-plugins[openvino]``) and the
CPU computes bf16 natively (AVX512_BF16 or AMX): on such a CPU it measured 3.9x
sentence-transformers fp32 where torch bf16 measured 2.7x (its attention is slow in bf16),
with agreement as good or better (see ``docs/guides/performance.md``). It reads the same export as
the ONNX Runtime backend (:mod:`~rerank_plugins.scorer._onnx_files`) and runs two batches
at once, like it. ``backend="openvino"`` also runs float32.

OpenVINO's objects copied into a forked child refer to the parent's threads, which do not
exist there: using them hangs, and so does destroying them when the child exits (measured
with OpenVINO 2026.4). So right after a fork the child keeps the parent's objects forever,
never touching them, and compiles its own on first use. openvino is imported only in
functions, lazily.
"""

from __future__ import annotations

import ctypes
import functools
import os
import queue
import threading
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rerank_plugins._optional import is_available, require
from rerank_plugins.scorer._backend import LoadedModel, LoadRequest, Logits
from rerank_plugins.scorer._onnx_files import auto_exports, open_export
from rerank_plugins.scorer._options import cpu_batch_layout

if TYPE_CHECKING:
    import torch

# OpenVINO's names for the precisions the scorer's dtype names.
_PRECISIONS = {"float32": "f32", "bfloat16": "bf16"}
_networks: weakref.WeakSet[OpenVinoCrossEncoder] = weakref.WeakSet()


@functools.cache
def native_bf16() -> bool:
    """Whether OpenVINO computes bf16 natively on this CPU (AVX512_BF16 or AMX).

    Elsewhere OpenVINO would quietly run float32 for a bf16 request.
    """
    ov = require("openvino", extra="openvino", feature="The OpenVINO backend")
    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    return "BF16" in capabilities


class OpenVinoCrossEncoder:
    """An OpenVINO compiled model that is called like a transformers model.

    Inputs are torch tensors on the CPU; outputs are fp32 torch tensors. ``parallel_batches``
    calls may run at once (one OpenVINO stream and infer request each), each on
    ``threads_per_batch`` threads.
    """

    def __init__(self, path: Path, *, dtype: str) -> None:
        import torch

        layout = cpu_batch_layout(torch.get_num_threads())
        self.path = path
        self.device = torch.device("cpu")
        self.parallel_batches = layout.parallel_batches
        self.threads_per_batch = layout.threads_per_batch
        self.batch_tokens = layout.batch_tokens
        # The precision is always set: OpenVINO's own default is bf16 on CPUs that have it.
        # Threads are not pinned to cores: forked workers would all pin to the same ones.
        self._config = {
            "INFERENCE_PRECISION_HINT": _PRECISIONS[dtype],
            "INFERENCE_NUM_THREADS": layout.parallel_batches * layout.threads_per_batch,
            "NUM_STREAMS": layout.parallel_batches,
            "ENABLE_CPU_PINNING": False,
        }
        self._lock = threading.Lock()
        self._compile()
        _networks.add(self)

    def _compile(self) -> None:
        ov = require("openvino", extra="openvino", feature="The OpenVINO backend")
        self._core = ov.Core()
        self._compiled: Any = self._core.compile_model(str(self.path), "CPU", self._config)
        self.input_names = tuple(port.get_any_name() for port in self._compiled.inputs)
        self._requests: list[Any] = []
        self._idle: queue.SimpleQueue[Any] = queue.SimpleQueue()

    def __call__(self, **inputs: torch.Tensor) -> Logits:
        """Run one padded batch on an idle infer request; unknown inputs are dropped."""
        import numpy as np
        import torch

        request = self._acquire()
        try:
            feed = {name: inputs[name].numpy() for name in self.input_names if name in inputs}
            logits = np.array(request.infer(feed)["logits"], dtype=np.float32)
        finally:
            self._idle.put(request)
        return Logits(torch.from_numpy(logits))

    def _acquire(self) -> Any:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            with self._lock:
                if self._compiled is None:  # the first call in a forked child
                    self._compile()
                request = self._compiled.create_infer_request()
                self._requests.append(request)
            return request

    def release_after_fork(self) -> None:
        """In a forked child: keep the parent's OpenVINO objects forever, compile anew."""
        for kept in (self._core, self._compiled, *self._requests):
            if kept is not None:  # one extra reference each, never dropped
                ctypes.pythonapi.Py_IncRef(ctypes.py_object(kept))
        self._core = self._compiled = None
        self._requests = []
        self._idle = queue.SimpleQueue()
        self._lock = threading.Lock()


class OpenVinoLoader:
    """Loads a model as an OpenVINO compiled model from its ONNX export (cached).

    With ``request.fallback`` (``backend="auto"``, ``dtype="bfloat16"`` on the CPU),
    declines (None) where torch should run instead: openvino is missing, the CPU has no
    native bf16, the model is not one the export covers (see
    :func:`~rerank_plugins.scorer._onnx_files.auto_exports`), or the export fails.
    """

    name = "openvino"

    def load(self, request: LoadRequest) -> LoadedModel | None:
        """Compile the cached export of ``request.model``, exporting it first on a miss."""
        import torch

        auto = request.fallback
        needed = ("openvino", "onnxruntime", "onnx")  # onnxruntime fuses the export
        if auto and not (all(map(is_available, needed)) and native_bf16()):
            return None
        require("openvino", extra="openvino", feature="The OpenVINO backend")
        for module in needed[1:]:  # not imported: onnxruntime hangs forked children at exit
            if not is_available(module):
                require(module, extra=None, feature="The OpenVINO backend's ONNX export")
        if request.dtype == "bfloat16" and not native_bf16():
            msg = (
                "backend='openvino' with dtype='bfloat16' needs a CPU with native bf16 "
                "(AVX512_BF16 or AMX); on this one OpenVINO would run float32, and bf16 is "
                "emulated (slower than float32). Use dtype='float32' (the default)."
            )
            raise ValueError(msg)
        if auto and not auto_exports(request.files[1]):
            return None
        return open_export(
            request,
            "model.onnx",
            functools.partial(OpenVinoCrossEncoder, dtype=request.dtype),
            backend="OpenVINO",
            any_error_means_damage=False,
            device=torch.device("cpu"),
            dtype=getattr(torch, request.dtype),
        )


def _after_fork_in_child() -> None:
    for network in list(_networks):
        network.release_after_fork()


if hasattr(os, "register_at_fork"):  # not on Windows, which cannot fork
    os.register_at_fork(after_in_child=_after_fork_in_child)
