"""The scorer's options resolved once: device, dtype, backend, and the batch-size defaults.

``"auto"`` becomes a concrete choice here (cuda > mps > cpu; bf16/fp16 on GPUs, fp32 on
CPU; int8 and OpenVINO on the CPU), aliases are normalised, and contradictory options fail
before anything loads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Default batch_size and max_batch_tokens, on the CPU and on a GPU.
CPU_BATCH_SIZE = 32
GPU_BATCH_SIZE = 512
# Measured on 2 CPU cores: ~1k padded tokens per batch beat 8k by ~1.6x (cache-sized matmuls).
CPU_BATCH_TOKENS = 1024
# ... except where batches run side by side, one thread each (ONNX Runtime and OpenVINO on the
# CPU): with ONNX Runtime 512 measured ~7% less CPU time per pair than 1024 (short, realistic
# and long passages).
CPU_PARALLEL_BATCH_TOKENS = 512
# Most batches run at once on the CPU (see cpu_batch_layout).
MAX_PARALLEL_BATCHES = 2
GPU_BATCH_TOKENS = 65_536
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


@dataclass(frozen=True, slots=True)
class CpuLayout:
    """How a backend with its own thread pool (ONNX Runtime, OpenVINO) spends the CPU."""

    parallel_batches: int
    threads_per_batch: int
    batch_tokens: int | None


def cpu_batch_layout(threads: int) -> CpuLayout:
    """Batches at once, threads per batch and batch size for ``threads`` CPU threads.

    ``threads`` is torch's thread count (``torch.set_num_threads`` / ``OMP_NUM_THREADS``), one
    setting for every backend. It is spent on two batches at once, each on half the threads:
    on 2 cores, one thread per batch was about as fast as one batch on both threads on a
    quiet machine and much faster on a busy one, where intra-op threads wait on each other
    (docs/guides/performance.md, "Short and long passages"). More batches at once were not
    measured on more cores, and a round with a single batch would run on 1/N of the
    threads, so two is the cap. ``batch_tokens`` (None: the scorer's default) is 512 where
    each batch runs on one thread, as measured there for ONNX Runtime (OpenVINO bf16 measured
    faster with it too: 4.1x against 3.6x sentence-transformers with one batch of 1024).
    """
    parallel = max(1, min(threads, MAX_PARALLEL_BATCHES))
    per_batch = max(1, threads // parallel)
    one_thread_each = parallel > 1 and per_batch == 1
    return CpuLayout(parallel, per_batch, CPU_PARALLEL_BATCH_TOKENS if one_thread_each else None)


@dataclass(frozen=True, slots=True)
class BackendOptions:
    """Where and how the model runs, resolved from the scorer's arguments.

    ``backend`` stays ``"auto"`` when the scorer may still choose at load time (ONNX Runtime
    or OpenVINO, else torch); ``dtype`` is the torch dtype name (``"float32"`` when quantizing:
    the int8 graph is made from fp32 weights).
    """

    backend: str
    device: str
    dtype: str
    quantize: bool

    @property
    def default_batch_size(self) -> int:
        """``batch_size`` when none is given: larger on a GPU."""
        return GPU_BATCH_SIZE if self.device.startswith("cuda") else CPU_BATCH_SIZE

    @property
    def default_batch_tokens(self) -> int:
        """``max_batch_tokens`` when none is given: larger on a GPU."""
        return GPU_BATCH_TOKENS if self.device.startswith("cuda") else CPU_BATCH_TOKENS


def resolve_backend_options(
    *,
    device: str | None,
    dtype: str | None,
    backend: str,
    onnx_quantize: bool,
    onnx_device: Callable[[str | None, str], str],
) -> BackendOptions:
    """Check and resolve ``device``, ``dtype``, ``backend`` and ``onnx_quantize`` together.

    ``onnx_device`` is the ONNX backend's own device rule (``"auto"`` means CUDA only where
    onnxruntime can use it), passed in so that this module imports no backend.
    """
    if backend not in ("auto", "torch", "onnx", "openvino"):
        msg = f"backend must be 'auto', 'torch', 'onnx' or 'openvino', got {backend!r}."
        raise ValueError(msg)
    if not isinstance(onnx_quantize, bool):
        msg = f"onnx_quantize must be True or False, got {onnx_quantize!r}."
        raise TypeError(msg)
    if onnx_quantize and backend != "onnx":
        msg = (
            f"onnx_quantize=True needs backend='onnx', got backend={backend!r}. Use "
            "dtype='int8' (ONNX Runtime dynamic int8) instead."
        )
        raise ValueError(msg)
    quantize = onnx_quantize or _wants_int8(dtype, backend)
    resolved_device = resolve_device(device)
    if quantize:
        resolved_device = _cpu_only_device(
            device,
            resolved_device,
            f"dtype='int8' runs on the CPU only (ONNX Runtime dynamic int8), got device="
            f"{device!r}. Use device='cpu', or dtype='auto' (bf16/fp16) on a GPU.",
        )
        backend = "onnx"
    elif backend == "onnx":
        resolved_device = onnx_device(device, resolved_device)
    elif backend == "openvino":
        resolved_device = _cpu_only_device(
            device,
            resolved_device,
            f"backend='openvino' runs on the CPU, got device={device!r}. Use device='cpu', "
            "or backend='auto' or 'torch' on a GPU.",
        )
    resolved_dtype = resolve_dtype(dtype, resolved_device)
    explicit_dtype = (dtype or "auto").lower() != "auto"
    if backend == "onnx" and explicit_dtype and resolved_dtype not in ("float32", "int8"):
        msg = (
            f"backend='onnx' runs in float32 or int8, got dtype={dtype!r}. Use "
            f"dtype='auto' or 'int8', or backend='torch' for {dtype!r}."
        )
        raise ValueError(msg)
    if backend == "openvino" and resolved_dtype not in ("float32", "bfloat16"):
        msg = (
            f"backend='openvino' runs in float32 or bfloat16, got dtype={dtype!r}. Use "
            f"dtype='auto' or 'bfloat16', or backend='torch' for {dtype!r}."
        )
        raise ValueError(msg)
    return BackendOptions(
        backend=backend,
        device=resolved_device,
        dtype="float32" if quantize else resolved_dtype,
        quantize=quantize,
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


def positive_int(name: str, value: int | None, default: int) -> int:
    """``value`` checked to be a positive int; ``default`` when it is None."""
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        msg = f"{name} must be a positive int, got {value!r}."
        raise ValueError(msg)
    return value


def optional_positive_int(name: str, value: int | None) -> int | None:
    """``value`` checked to be a positive int, or None."""
    return None if value is None else positive_int(name, value, 0)


def _wants_int8(dtype: str | None, backend: str) -> bool:
    """Tell whether ``dtype`` asks for int8, which only the ONNX backend runs."""
    if not isinstance(dtype, str) or dtype.lower() != "int8":
        return False
    if backend in ("torch", "openvino"):
        msg = (
            f"dtype='int8' runs on ONNX Runtime (dynamic int8), but backend={backend!r} was "
            f"requested. Use backend='auto' or 'onnx' for int8, or dtype='bfloat16' on {backend}."
        )
        raise ValueError(msg)
    return True


def _cpu_only_device(requested: str | None, resolved: str, message: str) -> str:
    """A CPU-only mode: ``"auto"`` picks the CPU even on a GPU machine; a GPU is refused."""
    if resolved != "cpu" and (requested or "auto").lower() != "auto":
        raise ValueError(message)
    return "cpu"


def resolve_overlap(requested: bool | None, device: str) -> bool:
    """``overlap_tokenization``: None turns it on for CUDA and off elsewhere (measured)."""
    if requested is None:
        return device.startswith("cuda")
    if not isinstance(requested, bool):
        msg = f"overlap_tokenization must be True, False or None, got {requested!r}."
        raise TypeError(msg)
    return requested
