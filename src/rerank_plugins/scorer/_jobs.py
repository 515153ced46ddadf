"""Running a worker round: encode every job, score all rows in shared batches, resolve futures.

A round runs in two phases. :func:`encode_round` tokenizes each job into a fixed slice of
the round's rows (a job whose encoding fails gets that error). :func:`score_round` plans
length-sorted batches over all rows and scores them: when a batch fails, its rows are
scored again one job at a time, so only the job that causes the failure gets the error (a
bad token id, an ONNX Runtime error, CUDA out of memory on one pair). A cancelled job's
remaining rows are skipped. A windowed passage scores as its best window.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import CancelledError, ThreadPoolExecutor
from dataclasses import dataclass, field

from rerank_plugins.scorer._batching import plan_batches
from rerank_plugins.scorer._encoding import Encoded
from rerank_plugins.scorer._forward import Forward, forward_splitting_on_oom
from rerank_plugins.scorer._worker import Job

logger = logging.getLogger(__name__)

# Encodes one job: (query, passages) -> its rows.
Encode = Callable[[str, Sequence[str]], Encoded]


@dataclass(slots=True)
class EncodedRound:
    """A round's jobs and their rows; job ``j`` owns ``ids[starts[j] : starts[j] + n]``."""

    jobs: list[Job]
    ids: list[list[int]] = field(default_factory=list)
    types: list[list[int]] = field(default_factory=list)
    owners: list[int] = field(default_factory=list)
    starts: dict[int, int] = field(default_factory=dict)
    encodings: dict[int, Encoded] = field(default_factory=dict)
    failures: dict[int, BaseException] = field(default_factory=dict)


def encode_round(jobs: list[Job], encode: Encode) -> EncodedRound:
    """Tokenize every job; a job whose encoding fails records its error and gets no rows.

    A job the encoder thread already prepared (``overlap_tokenization``) keeps that
    encoding, or that error.
    """
    encoded_round = EncodedRound(jobs)
    for j, job in enumerate(jobs):
        try:
            if isinstance(job.prepared, BaseException):
                raise job.prepared
            encoded = job.prepared if job.prepared is not None else encode(job.query, job.passages)
        except Exception as err:
            encoded_round.failures[j] = err
            continue
        encoded_round.encodings[j] = encoded
        encoded_round.starts[j] = len(encoded_round.ids)
        encoded_round.ids.extend(encoded.ids)
        encoded_round.types.extend(encoded.types or [])
        encoded_round.owners.extend([j] * len(encoded.ids))
    return encoded_round


def score_round(
    encoded_round: EncodedRound,
    forward: Forward,
    *,
    max_tokens: int,
    max_size: int,
    parallel: int = 1,
) -> None:
    """Score every live row in shared batches, then resolve each job's future.

    With ``parallel > 1``, that many batches run at once on their own threads (ONNX Runtime
    and OpenVINO on the CPU: one thread per batch keeps every core busy without intra-op
    synchronisation; see ``docs/guides/performance.md``). The batches are planned so that
    even a small round has ``parallel`` of them, longest first.
    """
    import torch

    jobs, ids, types, owners = (
        encoded_round.jobs,
        encoded_round.ids,
        encoded_round.types,
        encoded_round.owners,
    )
    failures = encoded_round.failures
    raw: list[float] = [0.0] * len(ids)
    batches = plan_batches(
        [len(row) for row in ids], max_tokens=max_tokens, max_size=max_size, min_batches=parallel
    )

    def score_rows(rows: list[int]) -> None:
        scores = forward_splitting_on_oom(
            forward, [ids[i] for i in rows], [types[i] for i in rows] if types else None
        )
        for i, value in zip(rows, scores, strict=True):
            raw[i] = value

    def score_batch(batch: list[int]) -> None:
        batch_jobs = {owners[i] for i in batch}
        dead = {j for j in batch_jobs if j in failures or jobs[j].future.abandoned}
        rows = batch
        if dead:
            if len(dead) == len(batch_jobs):
                return
            rows = [i for i in batch if owners[i] not in dead]
            batch_jobs -= dead
        try:
            with torch.inference_mode():
                score_rows(rows)
        except Exception as err:
            if len(batch_jobs) == 1:
                failures[batch_jobs.pop()] = err
                return
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
                    with torch.inference_mode():
                        score_rows([i for i in rows if owners[i] == j])
                except Exception as job_err:
                    failures[j] = job_err

    if parallel > 1 and len(batches) > 1:
        # Batches write disjoint rows of ``raw``; ``failures`` is a dict keyed by job.
        with ThreadPoolExecutor(parallel, thread_name_prefix="rerank-plugins-batch") as pool:
            for done in [pool.submit(score_batch, batch) for batch in batches]:
                done.result()
    else:
        for batch in batches:
            score_batch(batch)

    for j, job in enumerate(jobs):
        if j in failures:
            job.future.set_exception(failures[j])
        elif job.future.abandoned:
            job.future.set_exception(CancelledError())
        else:
            start, encoded = encoded_round.starts[j], encoded_round.encodings[j]
            scores = raw[start : start + len(encoded.ids)]
            job.future.set_result(encoded.best(scores, len(job.passages)))
