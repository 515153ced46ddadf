"""The cross-encoder scorer: a Hugging Face sequence-classification model behind one worker."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rerank_plugins._ranker import ContextRanker
from rerank_plugins._results import RankResult, check_inputs, select_top
from rerank_plugins.scorer._activation import activation_function
from rerank_plugins.scorer._backend import Loader, LoadRequest, load_first
from rerank_plugins.scorer._encoding import (
    Encoded,
    PairEncoder,
    ScoredSpans,
    TokenCounter,
    check_window_options,
)
from rerank_plugins.scorer._forward import forward_batch
from rerank_plugins.scorer._jobs import encode_round, score_round
from rerank_plugins.scorer._loading import load_config_and_tokenizer
from rerank_plugins.scorer._model_source import model_name
from rerank_plugins.scorer._onnx_runtime import OnnxLoader, onnx_device
from rerank_plugins.scorer._openvino_runtime import OpenVinoLoader
from rerank_plugins.scorer._options import (
    BackendOptions,
    optional_positive_int,
    positive_int,
    resolve_backend_options,
    resolve_overlap,
)
from rerank_plugins.scorer._packed import packed_encoder
from rerank_plugins.scorer._torch_backend import TorchLoader
from rerank_plugins.scorer._worker import Job, MicroBatcher, weak_runner

if TYPE_CHECKING:
    from typing_extensions import Self

logger = logging.getLogger(__name__)

# max_queue_pairs=None: about this many seconds of work may wait, at the measured rate.
_QUEUE_SECONDS = 30.0
# ... and never fewer pairs than this many worker rounds (batch_size * 16 pairs each).
_MIN_QUEUE_ROUNDS = 2


class CrossEncoderScorer(ContextRanker):
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
            ``"bfloat16"`` (fast on GPUs and on CPUs with native bf16; on such a CPU it runs
            on OpenVINO where ``rerank-plugins[openvino]`` is installed, else on torch) or
            ``"int8"`` (ONNX Runtime dynamic int8, CPU only). Reduced precision moves scores
            and can change rankings: see ``docs/guides/performance.md`` for the measured
            agreement.
        max_length: Tokens per (query, passage) pair; the passage is truncated to fit.
            Defaults to the model's limit.
        batch_size: Most pairs per forward pass.
        max_batch_tokens: Most padded tokens per forward pass (pairs x longest pair).
            Defaults: 65,536 on a GPU, 1024 on the CPU (512 with ONNX Runtime on 2 or 3 threads,
            where each of two batches at once runs on one thread).
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
            torch. ``"openvino"``: the same export compiled by OpenVINO, on the CPU, in
            float32 or bfloat16 (``dtype="bfloat16"`` on a CPU with native bf16 picks it by
            itself). ``"torch"``: transformers' model, on any device and dtype.
        onnx_quantize: With ``backend="onnx"``, the same as ``dtype="int8"`` (kept as an
            alias): faster on CPU, but scores move and rankings can change. Measure it on
            your data before relying on it (``benchmarks/agreement.py`` reports agreement).
        overlap_tokenization: Tokenize the next round of calls on a second thread while the
            device scores the current one. None (default): on for CUDA, off on the CPU,
            where both compete for the same cores (see ``docs/guides/performance.md``).
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
        overlap_tokenization: bool | None = None,
    ) -> None:
        model = model_name(model)
        self.long_passages, self.window_size, self.window_stride = check_window_options(
            long_passages, window_size, window_stride
        )
        options = resolve_backend_options(
            device=device,
            dtype=dtype,
            backend=backend,
            onnx_quantize=onnx_quantize,
            onnx_device=onnx_device,
        )
        self.overlap_tokenization = resolve_overlap(overlap_tokenization, options.device)
        self.batch_size = positive_int("batch_size", batch_size, options.default_batch_size)
        self.max_batch_tokens = positive_int(
            "max_batch_tokens", max_batch_tokens, options.default_batch_tokens
        )
        hub: dict[str, Any] = {
            "revision": revision,
            "local_files_only": local_files_only,
            "trust_remote_code": trust_remote_code,
            "token": token,
        }
        request = LoadRequest(
            model=model,
            files=load_config_and_tokenizer(model, **hub),
            device=options.device,
            dtype=options.dtype,
            quantize=options.quantize,
            max_length=max_length,
            activation=activation,
            **hub,
        )
        # The scorer chooses the backends to try; each implements the Loader interface.
        chosen, loaded = load_first(_loaders(options), request)
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
        # ONNX Runtime and OpenVINO on the CPU run batches side by side, with a batch size of
        # their own (cpu_batch_layout).
        self._parallel_batches: int = getattr(loaded.model, "parallel_batches", 1)
        own_tokens = getattr(loaded.model, "batch_tokens", None)
        if max_batch_tokens is None and own_tokens:
            self.max_batch_tokens = own_tokens
        self._pad_id = loaded.tokenizer.pad_token_id or 0
        self._encoder = PairEncoder(
            loaded.tokenizer,
            max_length=loaded.max_length,
            long_passages=long_passages,
            window_size=self.window_size,
            window_stride=self.window_stride,
            uses_token_types=loaded.uses_token_types,
        )
        # The worker owns self._tokenizer; callers count tokens with the counter's own copy.
        self._counter = TokenCounter(loaded.tokenizer, self._encoder)
        self._batcher = MicroBatcher(
            weak_runner(self._run_jobs),
            prepare_job=weak_runner(self._prepare_job) if self.overlap_tokenization else None,
            max_wait=max_wait_ms / 1000,
            max_pairs=self.batch_size * 16,
            max_queue=positive_int("max_queue", max_queue, 0),
            max_queue_pairs=optional_positive_int("max_queue_pairs", max_queue_pairs),
            min_queue_pairs=self.batch_size * 16 * _MIN_QUEUE_ROUNDS,
            queue_seconds=_QUEUE_SECONDS,
            device=self.device,
            name=f"rerank-plugins-scorer[{model}]",
            after_fork=self._counter.reset_after_fork,
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

    def _rank_all(self, query: str, passages: list[str]) -> list[RankResult]:
        scores, spans = self._scores_and_spans(query, passages)
        return select_top(scores, passages, None, None, spans=spans)

    async def _arank_all(self, query: str, passages: list[str]) -> list[RankResult]:
        scores, spans = await self._ascores_and_spans(query, passages)
        return select_top(scores, passages, None, None, spans=spans)

    def _default_length_function(self) -> Callable[[str], int]:
        return self.count_text_tokens

    def count_text_tokens(self, text: str) -> int:
        """Tokens of ``text`` alone with this model's tokenizer (no special tokens, no cut).

        The default token counter of ``rank(max_context_tokens=...)`` and of the LangChain
        adapter: a subword count close to, but not the same as, an LLM's.
        """
        return self._counter.count_text(text)

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
        return self._counter.count_pairs(query, check_inputs(query, passages))

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

    def _encode(self, tokenizer: Any, query: str, passages: Sequence[str]) -> Encoded:
        """Tokenize pairs (or windows of long passages) with ``tokenizer``; see PairEncoder."""
        return self._encoder.encode(tokenizer, query, passages)

    def _prepare_job(self, job: Job) -> Encoded:
        """Encoder thread (``overlap_tokenization``): tokenize a job ahead of its round."""
        return self._encode(self._tokenizer, job.query, job.passages)

    def _run_jobs(self, jobs: list[Job]) -> None:
        """Worker side: encode, score in shared batches, resolve futures (see ``_jobs``)."""
        encoded = encode_round(jobs, functools.partial(self._encode, self._tokenizer))
        tokens, size, parallel = self.max_batch_tokens, self.batch_size, self._parallel_batches
        score_round(encoded, self._forward, max_tokens=tokens, max_size=size, parallel=parallel)

    def _forward(self, ids: list[list[int]], types: list[list[int]] | None) -> list[float]:
        """Pad one batch, run the model, and turn logits into scores (in fp32)."""
        return forward_batch(
            self._run_network,
            ids,
            types,
            device=self._network.device,
            pad_id=self._pad_id,
            num_labels=self._num_labels,
            activate=self._activate,
        )


def _loaders(options: BackendOptions) -> list[Loader]:
    """The backends to try, in order.

    ``"auto"`` on the CPU tries ONNX Runtime first for fp32 (same scores, faster) and
    OpenVINO first for bf16 (where the CPU has native bf16; torch's bf16 attention is slow).
    """
    if options.backend == "onnx":
        return [OnnxLoader()]
    if options.backend == "openvino":
        return [OpenVinoLoader()]
    if options.backend == "auto" and options.device == "cpu":
        if options.dtype == "float32":
            return [OnnxLoader(), TorchLoader()]
        if options.dtype == "bfloat16":
            return [OpenVinoLoader(), TorchLoader()]
    return [TorchLoader()]
