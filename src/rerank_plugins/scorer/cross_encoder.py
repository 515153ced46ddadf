"""The cross-encoder scorer: a Hugging Face sequence-classification model behind one worker."""

from __future__ import annotations

import asyncio
import copy
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rerank_plugins._results import RankResult, check_inputs, check_selection, select_top
from rerank_plugins.scorer._batching import plan_batches
from rerank_plugins.scorer._loading import (
    load_config_and_tokenizer,
    load_cross_encoder,
    resolve_device,
    resolve_dtype,
)
from rerank_plugins.scorer._packed import packed_encoder
from rerank_plugins.scorer._windows import plan_windows, token_offsets
from rerank_plugins.scorer._worker import Job, MicroBatcher

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

ScoredSpans = tuple[list[float], list[tuple[int, int] | None]]

_CPU_BATCH_SIZE = 32
_GPU_BATCH_SIZE = 512
# Measured on 2 CPU cores: ~1k padded tokens per batch beat 8k by ~1.6x (cache-sized matmuls).
_CPU_BATCH_TOKENS = 1024
_GPU_BATCH_TOKENS = 65_536


class CrossEncoderScorer:
    """Scores (query, passage) pairs with a local cross-encoder; thread-safe and shareable.

    Prefer :func:`rerank_plugins.get_scorer`, which returns one shared instance per model
    and options per process. All scoring runs on one worker thread that coalesces
    concurrent calls into shared length-sorted batches.

    Args:
        model: A Hugging Face hub id or the path of a saved model directory.
        revision: Hub branch, tag or commit to load.
        device: ``"auto"`` (cuda > mps > cpu), ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or ``"mps"``.
        dtype: ``"auto"`` (bf16/fp16 on GPU, fp32 on CPU), ``"float32"``, ``"float16"``,
            ``"bfloat16"`` (torch; fast on GPUs and on CPUs with native bf16) or ``"int8"``
            (ONNX Runtime dynamic int8, CPU only). Reduced precision moves scores and can
            change rankings: see ``docs/guides/performance.md`` for the measured agreement.
        max_length: Tokens per (query, passage) pair; the passage is truncated to fit.
            Defaults to the model's limit.
        batch_size: Most pairs per forward pass.
        max_batch_tokens: Most padded tokens per forward pass (pairs x longest pair).
        activation: ``"auto"`` (the model's saved choice, else sigmoid), ``"sigmoid"`` or
            ``"none"`` (raw logits; for 2-logit heads, the log-odds of the relevant class).
        local_files_only: Only use local files and the Hugging Face cache; never the network.
        trust_remote_code: Allow model repos to run their own code. Off by default.
        token: Hugging Face token for private repos.
        long_passages: ``"truncate"`` scores the start of a passage that does not fit
            ``max_length``; ``"window"`` scores overlapping sentence-aligned windows over
            the whole passage (query kept whole) and takes the best window's score.
        window_size: Passage tokens per window; defaults to what fits beside the query.
        window_stride: Tokens between window starts; defaults to half a window.
        max_wait_ms: How long the worker waits for concurrent calls to join a batch.
        max_queue: Most waiting calls before new ones get ``OverloadedError``.
        backend: ``"auto"`` (default): ONNX Runtime for BERT, RoBERTa and XLM-R models of
            up to 150M parameters scored on the CPU in fp32 (same scores, faster), torch
            otherwise or if the export fails. ``"onnx"``: ONNX Runtime with fused attention,
            exported on first use and cached under ``$RERANK_PLUGINS_CACHE_DIR`` (default
            ``~/.cache/rerank-plugins``); it runs in fp32 and gives the same scores as
            torch. ``"torch"``: transformers' model, on any device and dtype.
        onnx_quantize: With ``backend="onnx"``, the same as ``dtype="int8"`` (kept as an
            alias): faster on CPU, but scores move and rankings can change. Measure it on
            your data before relying on it (``benchmarks/agreement.py`` reports agreement).
    """

    def __init__(
        self,
        model: str,
        *,
        revision: str | None = None,
        device: str = "auto",
        dtype: str = "auto",
        max_length: int | None = None,
        batch_size: int | None = None,
        max_batch_tokens: int | None = None,
        activation: str = "auto",
        local_files_only: bool = False,
        trust_remote_code: bool = False,
        token: str | bool | None = None,
        long_passages: str = "truncate",
        window_size: int | None = None,
        window_stride: int | None = None,
        max_wait_ms: float = 2.0,
        max_queue: int = 10_000,
        backend: str = "auto",
        onnx_quantize: bool = False,
    ) -> None:
        if not isinstance(model, str) or not model.strip():
            msg = f"model must be a hub id or a local path, got {model!r}."
            raise ValueError(msg)
        if long_passages not in ("truncate", "window"):
            msg = f"long_passages must be 'truncate' or 'window', got {long_passages!r}."
            raise ValueError(msg)
        self.long_passages = long_passages
        self.window_size = (
            None if window_size is None else _positive_int("window_size", window_size, 0)
        )
        self.window_stride = (
            None if window_stride is None else _positive_int("window_stride", window_stride, 0)
        )
        if backend not in ("auto", "torch", "onnx"):
            msg = f"backend must be 'auto', 'torch' or 'onnx', got {backend!r}."
            raise ValueError(msg)
        if not isinstance(onnx_quantize, bool):
            msg = f"onnx_quantize must be True or False, got {onnx_quantize!r}."
            raise TypeError(msg)
        if onnx_quantize and backend != "onnx":
            msg = "onnx_quantize=True needs backend='onnx'; the torch backend does not quantize."
            raise ValueError(msg)
        quantize = onnx_quantize or _wants_int8(dtype, backend)
        resolved_device = resolve_device(device)
        if quantize:
            resolved_device = _int8_device(device, resolved_device)
            backend = "onnx"
        elif backend == "onnx":
            from rerank_plugins.scorer._onnx import onnx_device

            resolved_device = onnx_device(device, resolved_device)
        resolved_dtype = "float32" if quantize else resolve_dtype(dtype, resolved_device)
        explicit_dtype = (dtype or "auto").lower() != "auto"
        if (
            backend == "onnx"
            and explicit_dtype
            and resolve_dtype(dtype, resolved_device) not in ("float32", "int8")
        ):
            msg = (
                f"backend='onnx' runs in float32 or int8, got dtype={dtype!r}. Use "
                f"dtype='auto' or 'int8', or backend='torch' for {dtype!r}."
            )
            raise ValueError(msg)
        on_gpu = resolved_device.startswith("cuda")
        self.batch_size = _positive_int(
            "batch_size", batch_size, _GPU_BATCH_SIZE if on_gpu else _CPU_BATCH_SIZE
        )
        self.max_batch_tokens = _positive_int(
            "max_batch_tokens", max_batch_tokens, _GPU_BATCH_TOKENS if on_gpu else _CPU_BATCH_TOKENS
        )
        files = load_config_and_tokenizer(
            model,
            revision=revision,
            local_files_only=local_files_only,
            trust_remote_code=trust_remote_code,
            token=token,
        )
        loaded = None
        if backend == "onnx" or (
            backend == "auto" and resolved_device == "cpu" and resolved_dtype == "float32"
        ):
            from rerank_plugins.scorer._onnx import load_onnx_cross_encoder

            loaded = load_onnx_cross_encoder(
                model,
                files,
                revision=revision,
                device=resolved_device,
                quantize=quantize,
                max_length=max_length,
                activation=activation,
                local_files_only=local_files_only,
                trust_remote_code=trust_remote_code,
                token=token,
                auto=backend == "auto",
            )
        chosen = "torch" if loaded is None else "onnx"
        if loaded is None:
            loaded = load_cross_encoder(
                model,
                files,
                revision=revision,
                device=resolved_device,
                dtype=resolved_dtype,
                max_length=max_length,
                activation=activation,
                local_files_only=local_files_only,
                trust_remote_code=trust_remote_code,
                token=token,
            )
        self.model = model
        self.backend = chosen
        self.revision = revision
        self.device = str(loaded.device)
        self.dtype = str(loaded.dtype).removeprefix("torch.")
        self.max_length = loaded.max_length
        self.activation = loaded.activation
        self._tokenizer = loaded.tokenizer
        self._network = loaded.model
        # BERT/RoBERTa/XLM-R run padding-free with a [CLS]-only last layer (same scores).
        self._run_network = (chosen == "torch" and packed_encoder(loaded.model)) or loaded.model
        self._num_labels = loaded.num_labels
        self._uses_token_types = loaded.uses_token_types
        self._pad_id = loaded.tokenizer.pad_token_id or 0
        self._pair_specials = loaded.tokenizer.num_special_tokens_to_add(pair=True)
        # The worker owns self._tokenizer; callers that count tokens use this copy instead,
        # because a fast tokenizer used from two threads at once fails with "Already borrowed".
        self._counting_tokenizer = copy.deepcopy(loaded.tokenizer)
        self._counting_lock = threading.Lock()
        self._batcher = MicroBatcher(
            self._run_jobs,
            max_wait=max_wait_ms / 1000,
            max_pairs=self.batch_size * 16,
            max_queue=max_queue,
            name=f"rerank-plugins-scorer[{model}]",
        )

    def __repr__(self) -> str:
        return (
            f"CrossEncoderScorer(model={self.model!r}, device={self.device!r}, "
            f"dtype={self.dtype!r}, max_length={self.max_length}"
            + (f", backend={self.backend!r})" if self.backend != "torch" else ")")
        )

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """Return one relevance score per passage, in input order."""
        return self._scores_and_spans(query, passages)[0]

    async def ascore(self, query: str, passages: Sequence[str]) -> list[float]:
        """Async :meth:`score`: awaits the worker without blocking the event loop."""
        return (await self._ascores_and_spans(query, passages))[0]

    def rank(
        self,
        query: str,
        passages: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
    ) -> list[RankResult]:
        """Return passages best first, as :class:`RankResult`; see :func:`select_top`."""
        check_selection(top_n, score_threshold)
        scores, spans = self._scores_and_spans(query, passages)
        return select_top(scores, passages, top_n, score_threshold, spans=spans)

    async def arank(
        self,
        query: str,
        passages: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
    ) -> list[RankResult]:
        """Async :meth:`rank`."""
        check_selection(top_n, score_threshold)
        scores, spans = await self._ascores_and_spans(query, passages)
        return select_top(scores, passages, top_n, score_threshold, spans=spans)

    def _scores_and_spans(self, query: str, passages: Sequence[str]) -> ScoredSpans:
        checked = check_inputs(query, passages)
        if not checked:
            return [], []
        result: ScoredSpans = self._batcher.submit(query, checked).result()
        return result

    async def _ascores_and_spans(self, query: str, passages: Sequence[str]) -> ScoredSpans:
        checked = check_inputs(query, passages)
        if not checked:
            return [], []
        result: ScoredSpans = await asyncio.wrap_future(self._batcher.submit(query, checked))
        return result

    def count_tokens(self, query: str, passages: Sequence[str]) -> int:
        """Return how many tokens the model reads for these pairs, after truncation."""
        passages = check_inputs(query, passages)
        if not passages:
            return 0
        with self._counting_lock:
            encoded = self._encode(self._counting_tokenizer, query, passages)
        return sum(len(row) for row in encoded.ids)

    def close(self) -> None:
        """Stop the worker thread; later calls raise ``RuntimeError``."""
        self._batcher.close()

    def _encode(self, tokenizer: Any, query: str, passages: Sequence[str]) -> _Encoded:
        """Tokenize pairs (or windows of long passages), truncating only the passage.

        The whole query is kept unless it alone leaves no room for the passage.
        """
        query_tokens = len(tokenizer(query, add_special_tokens=False)["input_ids"])
        room = self.max_length - query_tokens - self._pair_specials
        truncation = "only_second"
        if room < 1:
            logger.warning(
                "The query is %d tokens, too long for max_length=%d; truncating query and passage.",
                query_tokens,
                self.max_length,
            )
            truncation = "longest_first"
        texts: list[str] = list(passages)
        owners = list(range(len(passages)))
        spans: list[tuple[int, int] | None] = [None] * len(passages)
        if self.long_passages == "window" and room >= 1:
            texts, owners, spans = self._windows(tokenizer, passages, room)
        encoded = tokenizer(
            [query] * len(texts),
            texts,
            truncation=truncation,
            max_length=self.max_length,
            return_attention_mask=False,
            return_token_type_ids=self._uses_token_types,
        )
        types = encoded["token_type_ids"] if self._uses_token_types else None
        return _Encoded(encoded["input_ids"], types, owners, spans)

    def _windows(
        self, tokenizer: Any, passages: Sequence[str], room: int
    ) -> tuple[list[str], list[int], list[tuple[int, int] | None]]:
        """Expand each passage into sentence-aligned windows that fit beside the query."""
        size = min(self.window_size or room, room)
        stride = min(self.window_stride or max(size // 2, 1), size)
        offsets = token_offsets(tokenizer, passages)
        texts: list[str] = []
        owners: list[int] = []
        spans: list[tuple[int, int] | None] = []
        for index, (passage, passage_offsets) in enumerate(zip(passages, offsets, strict=True)):
            for start, end in plan_windows(passage, passage_offsets, size=size, stride=stride):
                texts.append(passage[start:end])
                owners.append(index)
                spans.append((start, end))
        return texts, owners, spans

    def _run_jobs(self, jobs: list[Job]) -> None:
        """Worker side: encode every job, score all pairs in shared batches, resolve futures.

        A job whose encoding fails, or whose pairs sit in a failed batch, gets that error;
        the other jobs are unaffected. A windowed passage scores as its best window.
        """
        import torch

        ids: list[list[int]] = []
        types: list[list[int]] = []
        owners: list[tuple[int, int]] = []
        encodings: dict[int, _Encoded] = {}
        failures: dict[int, BaseException] = {}
        for j, job in enumerate(jobs):
            try:
                encodings[j] = encoded = self._encode(self._tokenizer, job.query, job.passages)
            except Exception as err:
                failures[j] = err
                continue
            ids.extend(encoded.ids)
            types.extend(encoded.types or [])
            owners.extend((j, row) for row in range(len(encoded.ids)))

        raw: list[float] = [0.0] * len(ids)
        batches = plan_batches(
            [len(row) for row in ids], max_tokens=self.max_batch_tokens, max_size=self.batch_size
        )
        with torch.inference_mode():
            for batch in batches:
                batch_jobs = {owners[i][0] for i in batch}
                if batch_jobs <= failures.keys():
                    continue
                try:
                    scores = self._forward_splitting_on_oom(
                        [ids[i] for i in batch], [types[i] for i in batch] if types else None
                    )
                except Exception as err:
                    for j in batch_jobs:
                        failures.setdefault(j, err)
                    continue
                for i, value in zip(batch, scores, strict=True):
                    raw[i] = value

        start = 0
        for j, job in enumerate(jobs):
            if j in failures:
                job.future.set_exception(failures[j])
            elif j in encodings:
                count = len(encodings[j].ids)
                job.future.set_result(
                    encodings[j].best(raw[start : start + count], len(job.passages))
                )
                start += count

    def _forward_splitting_on_oom(
        self, ids: list[list[int]], types: list[list[int]] | None
    ) -> list[float]:
        """Run a batch; on CUDA out-of-memory, split it in halves and retry (down to one pair)."""
        import torch

        try:
            return self._forward(ids, types)
        except torch.cuda.OutOfMemoryError:
            if len(ids) == 1:
                raise
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            half = len(ids) // 2
            logger.warning("CUDA out of memory on %d pairs; retrying in halves.", len(ids))
            return self._forward_splitting_on_oom(
                ids[:half], types[:half] if types else None
            ) + self._forward_splitting_on_oom(ids[half:], types[half:] if types else None)

    def _forward(self, ids: list[list[int]], types: list[list[int]] | None) -> list[float]:
        """Pad one batch, run the model, and turn logits into scores (in fp32)."""
        import torch

        width = max(len(row) for row in ids)
        input_ids = torch.full((len(ids), width), self._pad_id, dtype=torch.long)
        attention_mask = torch.zeros((len(ids), width), dtype=torch.long)
        token_type_ids = torch.zeros((len(ids), width), dtype=torch.long) if types else None
        for row, tokens in enumerate(ids):
            input_ids[row, : len(tokens)] = torch.tensor(tokens)
            attention_mask[row, : len(tokens)] = 1
            if token_type_ids is not None and types is not None:
                token_type_ids[row, : len(tokens)] = torch.tensor(types[row])
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None:
            inputs["token_type_ids"] = token_type_ids
        inputs = {name: self._to_device(tensor) for name, tensor in inputs.items()}
        logits = self._run_network(**inputs).logits.float()
        raw = logits[:, 0] if self._num_labels == 1 else logits[:, 1] - logits[:, 0]
        if self.activation == "sigmoid":
            raw = torch.sigmoid(raw)
        return [float(value) for value in raw.cpu().tolist()]

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device == self._network.device:
            return tensor
        if self._network.device.type == "cuda":
            return tensor.pin_memory().to(self._network.device, non_blocking=True)
        return tensor.to(self._network.device)


def _positive_int(name: str, value: int | None, default: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        msg = f"{name} must be a positive int, got {value!r}."
        raise ValueError(msg)
    return value


def _optional_positive_int(name: str, value: int | None) -> int | None:
    return None if value is None else _positive_int(name, value, 0)


def _wants_int8(dtype: str | None, backend: str) -> bool:
    """Tell whether ``dtype`` asks for int8, which only the ONNX backend runs."""
    if not isinstance(dtype, str) or dtype.lower() != "int8":
        return False
    if backend == "torch":
        msg = (
            "dtype='int8' runs on ONNX Runtime (dynamic int8), but backend='torch' was "
            "requested. Use backend='auto' or 'onnx' for int8, or dtype='bfloat16' on torch."
        )
        raise ValueError(msg)
    return True


def _int8_device(requested: str | None, resolved: str) -> str:
    """int8 runs on the CPU: ``"auto"`` picks it even on a GPU machine; a GPU is refused."""
    if resolved != "cpu" and (requested or "auto").lower() != "auto":
        msg = (
            f"dtype='int8' runs on the CPU only (ONNX Runtime dynamic int8), got "
            f"device={requested!r}. Use device='cpu', or dtype='auto' (bf16/fp16) on a GPU."
        )
        raise ValueError(msg)
    return "cpu"


@dataclass(frozen=True, slots=True)
class _Encoded:
    """One job's tokenized rows; ``owners[row]`` is the passage a row (window) belongs to."""

    ids: list[list[int]]
    types: list[list[int]] | None
    owners: list[int]
    spans: list[tuple[int, int] | None]

    def best(self, scores: Sequence[float], passages: int) -> ScoredSpans:
        """Each passage's best row score, and that row's character span (None if whole)."""
        best = [float("-inf")] * passages
        spans: list[tuple[int, int] | None] = [None] * passages
        for owner, span, value in zip(self.owners, self.spans, scores, strict=True):
            if value > best[owner]:
                best[owner], spans[owner] = value, span
        return best, spans
