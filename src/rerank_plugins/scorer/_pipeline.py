"""Overlap tokenization with the device: the hand-off between the encoder and device threads.

With ``overlap_tokenization`` (on by default on CUDA), a scorer's :class:`MicroBatcher`
runs two threads instead of one:

- the **encoder thread** takes jobs from the queue and tokenizes each as it arrives,
  building the next round while the device runs the current one. It keeps collecting as
  long as the device is busy (up to ``max_pairs``), then, once the device is free, for at
  most ``max_wait`` after the round's first job, as the one-thread worker does;
- the **device thread** takes a finished round from the :class:`Handoff` and scores it.

At most one round waits in the hand-off, so at most two rounds are out of the queue: the
one on the device and the one being encoded (the one-thread worker has one). The encoder
thread alone uses the tokenizer and the device thread alone the model. A job cancelled
while it waits in a prefetched round is dropped when its round starts, as a queued one is.

On 2 CPU cores tokenization and the forward pass compete for the same cores, and the
overlap measured no faster there (see ``docs/guides/performance.md``): it is off by default
on the CPU.

.. py:data:: WAKE

   Put on the job queue by the device thread when it finishes a round, so an encoder thread
   that waits for jobs while the device is busy re-checks whether to hand off its round.
"""

from __future__ import annotations

import threading
from typing import Final, Generic, TypeVar

# A job of the worker (``_worker.Job``); generic, so that this module imports no other.
_Job = TypeVar("_Job")


class Wake:
    """The type of :data:`WAKE`."""


WAKE: Final = Wake()
_EMPTY: Final = object()


class Handoff(Generic[_Job]):
    """A one-round slot from the encoder thread to the device thread.

    ``None`` in the slot is the stop mark: the device thread ends after the rounds before it.
    """

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._slot: object = _EMPTY
        self.device_busy = False

    def wait_until_empty(self) -> None:
        """Block until the device thread took the waiting round (if any)."""
        with self._ready:
            self._ready.wait_for(lambda: self._slot is _EMPTY)

    def put(self, jobs: list[_Job] | None) -> None:
        """Hand over a round (or the stop mark), waiting for the slot to be free."""
        with self._ready:
            self._ready.wait_for(lambda: self._slot is _EMPTY)
            self._slot = jobs
            self._ready.notify_all()

    def take(self) -> list[_Job] | None:
        """Wait for a round (or the stop mark); the device counts as busy until :meth:`done`."""
        with self._ready:
            self._ready.wait_for(lambda: self._slot is not _EMPTY)
            jobs: list[_Job] | None = self._slot  # type: ignore[assignment]
            self._slot = _EMPTY
            self.device_busy = jobs is not None
            self._ready.notify_all()
            return jobs

    def done(self) -> None:
        """The device finished its round."""
        with self._ready:
            self.device_busy = False
