"""The cross-encoder scorer: a Hugging Face sequence-classification model behind one worker."""

from __future__ import annotations

import asyncio
import copy
import functools
import logging
import os
import threading
import weakref
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rerank_plugins._context import DEFAULT_NEAR_DUPLICATE_THRESHOLD, ContextOptions, Order
from rerank_plugins._results import RankResult, check_inputs, select_top
from rerank_plugins.scorer._batching import plan_batches
from rerank_plugins.scorer._loading import (
    activation_function,
    load_config_and_tokenizer,
    load_cross_encoder,
    model_name,
    resolve_device,
    resolve_dtype,
)
from rerank_plugins.scorer._packed import packed_encoder
from rerank_plugins.scorer._windows import pair_builder, passage_windows
from rerank_plugins.scorer._worker import Job, MicroBatcher

if TYPE_CHECKING:
    import torch
    from typing_extensions import Self

logger = logging.getLogger(__name__)

ScoredSpans = tuple[list[float], list[tuple[int, int] | None]]

_CPU_BATCH_SIZE = 32
_GPU_BATCH_SIZE = 512
# Measured on 2 CPU cores: ~1k padded tokens per batch beat 8k by ~1.6x (cache-sized matmuls).
_CPU_BATCH_TOKENS = 1024
_GPU_BATCH_TOKENS = 65_536
# max_queue_pairs=None: about this many seconds of work may wait, at the measured rate.
_QUEUE_SECONDS = 30.0
# ... and never fewer pairs than this many worker rounds (batch_size * 16 pairs each).
_MIN_QUEUE_ROUNDS = 2


class CrossEncoderScorer:
    """Scores (query, passage) pairs with a local cross-encoder; thread-safe and shareable.

    Prefer :func:`rerank_plugins.get_scorer`, which returns one shared instance per model
    and options per process. All scoring runs on one worker thread that coalesces
    concurrent calls into shared length-sorted batches.

    Args:
        model: A Hugging Face hub id or the path of a saved model directory (``str`` or
            ``os.PathLike``).
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
        activation: ``"auto"`` (the model's saved sentence-transformers choice, else
            sigmoid), ``"sigmoid"``, ``"none"`` (raw logits; for 2-logit heads, the log-odds
            of the relevant class), or another elementwise ``torch.nn`` activation by its
            lowercase class name (``"tanh"``, ``"relu"``, ...; see the Python API reference).
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
        max_queue_pairs: Most waiting (query, passage) pairs before new calls get
            ``OverloadedError``. None (default): about 30 seconds of work at the measured
            scoring rate, and at least two worker rounds (``32 * batch_size`` pairs). A call
            is always accepted when nothing waits, however many passages it has.
        backend: ``"auto"`` (default): ONNX Runtime for BERT, RoBERTa, XLM-R and ModernBERT
            models of up to 150M parameters scored on the CPU in fp32 (same scores, faster), torch
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
        model: str | os.PathLike[str],
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
        max_queue_pairs: int | None = None,
        backend: str = "auto",
        onnx_quantize: bool = False,
    ) -> None:
        model = model_name(model)
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
        self._activate = activation_function(loaded.activation)
        self._tokenizer = loaded.tokenizer
        self._network = loaded.model
        # BERT/RoBERTa/XLM-R run padding-free with a [CLS]-only last layer (same scores).
        self._run_network = (chosen == "torch" and packed_encoder(loaded.model)) or loaded.model
        self._num_labels = loaded.num_labels
        self._uses_token_types = loaded.uses_token_types
        self._pad_id = loaded.tokenizer.pad_token_id or 0
        self._pair_specials = loaded.tokenizer.num_special_tokens_to_add(pair=True)
        self._build_pair = pair_builder(loaded.tokenizer)
        # The worker owns self._tokenizer; callers that count tokens use this copy instead,
        # because a fast tokenizer used from two threads at once fails with "Already borrowed".
        self._counting_tokenizer = copy.deepcopy(loaded.tokenizer)
        self._counting_lock = threading.Lock()
        self._batcher = MicroBatcher(
            _weak_runner(weakref.ref(self)),
            max_wait=max_wait_ms / 1000,
            max_pairs=self.batch_size * 16,
            max_queue=_positive_int("max_queue", max_queue, 0),
            max_queue_pairs=_optional_positive_int("max_queue_pairs", max_queue_pairs),
            min_queue_pairs=self.batch_size * 16 * _MIN_QUEUE_ROUNDS,
            queue_seconds=_QUEUE_SECONDS,
            device=self.device,
            name=f"rerank-plugins-scorer[{model}]",
            after_fork=_weak_lock_reset(weakref.ref(self)),
        )
        # Dropped without close(): end the worker thread (it holds no reference to self).
        weakref.finalize(self, self._batcher.stop)
        self._shared = False  # set by get_scorer

    def __repr__(self) -> str:
        return (
            f"CrossEncoderScorer(model={self.model!r}, device={self.device!r}, "
            f"dtype={self.dtype!r}, max_length={self.max_length}"
            + (f", backend={self.backend!r})" if self.backend != "torch" else ")")
        )

    def score(self, query: str, passages: Sequence[str]) -> list[float]:
        """Return one relevance score per passage, in input order."""
        return self._scores_and_spans(query, check_inputs(query, passages))[0]

    async def ascore(self, query: str, passages: Sequence[str]) -> list[float]:
        """Async :meth:`score`: awaits the worker without blocking the event loop."""
        return (await self._ascores_and_spans(query, check_inputs(query, passages)))[0]

    def rank(
        self,
        query: str,
        passages: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        max_context_tokens: int | None = None,
        length_function: Callable[[str], int] | str | None = None,
        deduplicate: bool = False,
        near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
        order: Order = "relevance",
    ) -> list[RankResult]:
        """Return passages best first, as :class:`RankResult`; see :func:`select_top`.

        ``deduplicate`` drops copies before scoring, ``max_context_tokens`` keeps the best
        passages whose tokens (``length_function``, default :meth:`count_text_tokens`) fit
        the budget, and ``order="long_context"`` puts the best first and last; see
        :mod:`rerank_plugins._context` for the rules.
        """
        context = ContextOptions.create(
            top_n=top_n,
            score_threshold=score_threshold,
            max_context_tokens=max_context_tokens,
            length_function=length_function,
            default_length_function=self.count_text_tokens,
            deduplicate=deduplicate,
            near_duplicate_threshold=near_duplicate_threshold,
            order=order,
        )
        checked = check_inputs(query, passages)
        return context.rank(checked, functools.partial(self._rank_all, query)).results

    async def arank(
        self,
        query: str,
        passages: Sequence[str],
        *,
        top_n: int | None = None,
        score_threshold: float | None = None,
        max_context_tokens: int | None = None,
        length_function: Callable[[str], int] | str | None = None,
        deduplicate: bool = False,
        near_duplicate_threshold: float | None = DEFAULT_NEAR_DUPLICATE_THRESHOLD,
        order: Order = "relevance",
    ) -> list[RankResult]:
        """Async :meth:`rank`."""
        context = ContextOptions.create(
            top_n=top_n,
            score_threshold=score_threshold,
            max_context_tokens=max_context_tokens,
            length_function=length_function,
            default_length_function=self.count_text_tokens,
            deduplicate=deduplicate,
            near_duplicate_threshold=near_duplicate_threshold,
            order=order,
        )
        checked = check_inputs(query, passages)
        selection = await context.arank(checked, functools.partial(self._arank_all, query))
        return selection.results

    def _rank_all(self, query: str, passages: list[str]) -> list[RankResult]:
        scores, spans = self._scores_and_spans(query, passages)
        return select_top(scores, passages, None, None, spans=spans)

    async def _arank_all(self, query: str, passages: list[str]) -> list[RankResult]:
        scores, spans = await self._ascores_and_spans(query, passages)
        return select_top(scores, passages, None, None, spans=spans)

    def count_text_tokens(self, text: str) -> int:
        """Tokens of ``text`` alone with this model's tokenizer (no special tokens, no cut).

        The default token counter of ``rank(max_context_tokens=...)`` and of the LangChain
        adapter: a subword count close to, but not the same as, an LLM's.
        """
        if not isinstance(text, str):
            msg = f"text must be a str, got {type(text).__name__}."
            raise TypeError(msg)
        with self._counting_lock:
            encoded = self._counting_tokenizer(text, add_special_tokens=False, verbose=False)
        return len(encoded["input_ids"])

    @property
    def pending_requests(self) -> int:
        """Calls waiting for the worker (queued, not yet being scored)."""
        return self._batcher.pending_requests

    @property
    def pending_pairs(self) -> int:
        """(query, passage) pairs waiting for the worker (queued, not yet being scored)."""
        return self._batcher.pending_pairs

    @property
    def pairs_per_second(self) -> float | None:
        """The measured scoring rate (a moving average); None before the first batch."""
        return self._batcher.pairs_per_second

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called; a closed scorer refuses new calls."""
        return self._batcher.closed

    def _scores_and_spans(self, query: str, checked: list[str]) -> ScoredSpans:
        """Scores and spans of passages that already passed ``check_inputs``."""
        if not checked:
            return [], []
        result: ScoredSpans = self._batcher.submit(query, checked).result()
        return result

    async def _ascores_and_spans(self, query: str, checked: list[str]) -> ScoredSpans:
        """Async :meth:`_scores_and_spans`."""
        if not checked:
            return [], []
        # Cancelling the awaiting task cancels the job: dropped if queued, else it stops
        # after its current batch (see JobFuture).
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
        """Finish the calls already queued, stop the worker thread; later calls raise.

        Safe to call twice or from several threads. The model itself is freed when the
        last reference to the scorer goes (dropping a scorer without ``close()`` also
        ends its thread). A scorer from :func:`get_scorer` is shared: release those with
        :func:`clear_scorers` instead.
        """
        self._batcher.close()

    def __enter__(self) -> Self:
        """``with CrossEncoderScorer(...) as scorer:`` closes it at the end of the block."""
        if self._shared:
            msg = (
                "get_scorer() returns a scorer shared by the whole process, which a with "
                "block must not close for everyone. Use it without 'with' (clear_scorers() "
                "releases shared scorers), or create a private CrossEncoderScorer(...) for "
                "the with block."
            )
            raise TypeError(msg)
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the scorer."""
        self.close()

    def _encode(self, tokenizer: Any, query: str, passages: Sequence[str]) -> _Encoded:
        """Tokenize pairs (or windows of long passages), truncating only the passage.

        The whole query is kept unless it alone leaves no room for the passage.
        """
        query_ids = tokenizer(query, add_special_tokens=False)["input_ids"]
        room = self.max_length - len(query_ids) - self._pair_specials
        truncation = "only_second"
        if room < 1:
            logger.warning(
                "The query is %d tokens, too long for max_length=%d; truncating query and passage.",
                len(query_ids),
                self.max_length,
            )
            truncation = "longest_first"
        elif self.long_passages == "window":
            return self._windows(tokenizer, query_ids, passages, room)
        encoded = tokenizer(
            [query] * len(passages),
            list(passages),
            truncation=truncation,
            max_length=self.max_length,
            return_attention_mask=False,
            return_token_type_ids=self._uses_token_types,
        )
        types = encoded["token_type_ids"] if self._uses_token_types else None
        spans: list[tuple[int, int] | None] = [None] * len(passages)
        return _Encoded(encoded["input_ids"], types, list(range(len(passages))), spans)

    def _windows(
        self, tokenizer: Any, query_ids: list[int], passages: Sequence[str], room: int
    ) -> _Encoded:
        """Rows for sentence-aligned windows of each passage's own tokens, beside the query.

        Each row is the query and a slice of the passage's token ids joined by the
        tokenizer's special tokens, at most ``max_length`` tokens, and its span is
        exactly the characters those tokens come from.
        """
        size = min(self.window_size or room, room)
        stride = min(self.window_stride or max(size // 2, 1), size)
        ids: list[list[int]] = []
        types: list[list[int]] = []
        owners: list[int] = []
        spans: list[tuple[int, int] | None] = []
        windowed = passage_windows(tokenizer, passages, size=size, stride=stride)
        for index, (passage_ids, windows) in enumerate(windowed):
            for window in windows:
                row, row_types = self._build_pair(
                    query_ids, passage_ids[window.first : window.last]
                )
                ids.append(row)
                types.append(row_types)
                owners.append(index)
                spans.append((window.start, window.end))
        return _Encoded(ids, types if self._uses_token_types else None, owners, spans)

    def _run_jobs(self, jobs: list[Job]) -> None:
        """Worker side: encode every job, score all pairs in shared batches, resolve futures.

        Each job owns a fixed slice of the rows, so a failure never moves another job's
        scores. A job whose encoding fails gets that error. When a batch fails, its rows are
        scored again one job at a time, so only the job that causes the failure gets the
        error (a bad token id, an ONNX Runtime error, CUDA out of memory on one pair). A
        cancelled job's remaining rows are skipped. A windowed passage scores as its best
        window.
        """
        import torch

        ids: list[list[int]] = []
        types: list[list[int]] = []
        owners: list[int] = []
        starts: dict[int, int] = {}
        encodings: dict[int, _Encoded] = {}
        failures: dict[int, BaseException] = {}
        for j, job in enumerate(jobs):
            try:
                encodings[j] = encoded = self._encode(self._tokenizer, job.query, job.passages)
            except Exception as err:
                failures[j] = err
                continue
            starts[j] = len(ids)
            ids.extend(encoded.ids)
            types.extend(encoded.types or [])
            owners.extend([j] * len(encoded.ids))

        raw: list[float] = [0.0] * len(ids)
        batches = plan_batches(
            [len(row) for row in ids], max_tokens=self.max_batch_tokens, max_size=self.batch_size
        )
        with torch.inference_mode():
            for batch in batches:
                batch_jobs = {owners[i] for i in batch}
                dead = {j for j in batch_jobs if j in failures or jobs[j].future.abandoned}
                rows = batch
                if dead:
                    if len(dead) == len(batch_jobs):
                        continue
                    rows = [i for i in batch if owners[i] not in dead]
                    batch_jobs -= dead
                try:
                    self._score_rows(rows, ids, types, raw)
                except Exception as err:
                    if len(batch_jobs) == 1:
                        failures[batch_jobs.pop()] = err
                        continue
                    logger.warning(
                        "A batch of %d pairs from %d requests failed (%s: %s); scoring each "
                        "request alone so that only the failing one gets the error.",
                        len(rows),
                        len(batch_jobs),
                        type(err).__name__,
                        err,
                    )
                    for j in sorted(batch_jobs):
                        try:
                            self._score_rows([i for i in rows if owners[i] == j], ids, types, raw)
                        except Exception as job_err:
                            failures[j] = job_err

        for j, job in enumerate(jobs):
            if j in failures:
                job.future.set_exception(failures[j])
            elif job.future.abandoned:
                job.future.set_exception(CancelledError())
            else:
                start, encoded = starts[j], encodings[j]
                scores = raw[start : start + len(encoded.ids)]
                job.future.set_result(encoded.best(scores, len(job.passages)))

    def _score_rows(
        self, rows: list[int], ids: list[list[int]], types: list[list[int]], raw: list[float]
    ) -> None:
        """Score ``rows`` (indices into ``ids``) in one forward pass; write them into ``raw``."""
        scores = self._forward_splitting_on_oom(
            [ids[i] for i in rows], [types[i] for i in rows] if types else None
        )
        for i, value in zip(rows, scores, strict=True):
            raw[i] = value

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
        if self._activate is not None:
            raw = self._activate(raw)
        return [float(value) for value in raw.cpu().tolist()]

    def _to_device(self, tensor: torch.Tensor) -> torch.Tensor:
        if tensor.device == self._network.device:
            return tensor
        if self._network.device.type == "cuda":
            return tensor.pin_memory().to(self._network.device, non_blocking=True)
        return tensor.to(self._network.device)


def _weak_lock_reset(ref: weakref.ref[CrossEncoderScorer]) -> Callable[[], None]:
    """Give the scorer a fresh token-counting lock in a forked child.

    A lock held by another thread at ``fork()`` would stay held in the child, where that
    thread does not exist, and ``count_tokens`` would wait forever.
    """

    def reset() -> None:
        scorer = ref()
        if scorer is not None:
            scorer._counting_lock = threading.Lock()

    return reset


def _weak_runner(ref: weakref.ref[CrossEncoderScorer]) -> Callable[[list[Job]], None]:
    """The worker's way to reach the scorer: a weak reference, so the thread never keeps it."""

    def run_jobs(jobs: list[Job]) -> None:
        scorer = ref()
        if scorer is None:
            msg = "The scorer was garbage-collected before it could answer this request."
            raise RuntimeError(msg)
        scorer._run_jobs(jobs)

    return run_jobs


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
