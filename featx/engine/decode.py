"""Decoding images in worker processes, ahead of the backbone, straight into shared batch buffers.

Pillow and the NumPy resize hold the GIL for much of their work, so decoding threads stop scaling
at about four; worker processes scale with the cores. Each worker writes the pixels it decodes
straight into its row of one shared buffer of ``slots`` batches, and the parent hands that batch to
the backbone as a view, without copying it. At most ``slots`` batches are in flight, so memory
stays flat whatever the dataset size, and the backbone computes one batch while the workers decode
the next ones. Batches keep the input order; a file that does not decode is reported with the same
reason as :func:`featx.data.images.load_image` gives. A worker that dies (killed, out of memory) fails the
run with one :class:`DecodeWorkerError` line; what was committed before stays, and a rerun resumes.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from featx.engine.pixels import DecodeSpec, NotAsPlannedError, decode_chunk
from featx.engine.workers import borrow_workers
from featx.errors import ImageDecodeError

T = TypeVar("T")

SLOTS = 3  # batches in flight: one with the backbone, two being decoded
# Starting a worker process costs about what decoding 100 small images does: smaller runs use threads.
PROCESS_MIN_IMAGES = 256
DECODER_ENV = "FEATX_DECODER"  # "processes" or "threads" overrides use_processes (benchmarks, tests)


@dataclass
class _Batch(Generic[T]):
    slot: int
    keys: list[T]
    outcomes: list[tuple[bool, str] | None | bool] = field(default_factory=list)  # False: not back yet
    remaining: int = 0


def use_processes(images: int, backbone_on_cpu: bool) -> bool:
    """Whether a run of ``images`` decodes in worker processes rather than threads.

    Processes when the backbone runs on a GPU (the cores have nothing else to do, and threads stop
    scaling at about four) and the run repays starting them. When the backbone runs on the CPU it
    is the bottleneck and needs the cores itself: workers decoding at full speed beside it slowed
    a 2-core run by a quarter, while GIL-bound threads keep up with it (README, Speed).
    ``$FEATX_DECODER`` (processes or threads) overrides the choice."""
    forced = os.environ.get(DECODER_ENV, "")
    if forced in ("processes", "threads"):
        return forced == "processes"
    return images >= PROCESS_MIN_IMAGES and not backbone_on_cpu


def decode_batches(
    items: Sequence[tuple[T, Path]],
    spec: DecodeSpec,
    workers: int,
    batch_size: int,
    sha256: Callable[[T], bytes] | None = None,
    slots: int = SLOTS,
    processes: bool | None = None,
) -> Iterator[tuple[list[T], np.ndarray, list[tuple[T, ImageDecodeError]]]]:
    """Yield ``(keys, pixels, failures)`` per batch of ``batch_size`` input items, in input order.

    ``pixels`` is a (n, size, size, 3) float32 view of the shared buffer holding the keys that
    decoded; it stays valid until the next batch is asked for. ``failures`` are ``(key, error)``.
    ``processes`` (default: :func:`use_processes` for a GPU backbone) decodes in ``workers``
    processes, else in as many threads of this process.
    With ``sha256`` (the hex digest, as bytes, each key's file must have) a file is read once and
    decoded from those bytes only if they hash to it; else its error is a :class:`NotAsPlannedError`.
    """
    items = list(items)
    if not items:
        return
    workers = max(1, min(workers, len(items)))
    shape = (slots, batch_size, spec.size, spec.size, 3)
    chunk = max(1, min(16, batch_size // (2 * workers)))  # files per message: a few per worker per batch
    if processes is None:
        processes = use_processes(len(items), backbone_on_cpu=False)
    with _SharedBuffer(shape, shared=processes) as shared, (
        borrow_workers(workers, shared.path, shape, spec) if processes else _Threads(workers, shared.array, spec)
    ) as pool:
        pending: deque[_Batch[T]] = deque()
        by_slot: dict[int, _Batch[T]] = {}
        starts = range(0, len(items), batch_size)
        next_start = iter(starts)

        def submit(slot: int) -> None:
            start = next(next_start, None)
            if start is None:
                return
            entries = items[start : start + batch_size]
            batch = _Batch(slot, [k for k, _ in entries], [False] * len(entries), len(entries))
            pending.append(batch)
            by_slot[slot] = batch
            for first in range(0, len(entries), chunk):
                part = [(path, sha256(key) if sha256 else None) for key, path in entries[first : first + chunk]]
                pool.put((slot, first, part))

        for slot in range(slots):
            submit(slot)
        while pending:
            batch = pending[0]
            while batch.remaining:
                slot, first, outcomes = pool.next_result()
                target = by_slot[slot]
                target.outcomes[first : first + len(outcomes)] = outcomes
                target.remaining -= len(outcomes)
            yield _finished(batch, shared.array[batch.slot])
            pending.popleft()
            submit(batch.slot)  # the consumer is done with this slot: refill it


def _finished(batch: _Batch[T], rows: np.ndarray):
    """The batch's decoded keys, their pixels (moved up over failed rows) and its failures."""
    good = [row for row, outcome in enumerate(batch.outcomes) if outcome is None]
    failures = [(batch.keys[row], (NotAsPlannedError if outcome[0] else ImageDecodeError)(outcome[1]))
                for row, outcome in enumerate(batch.outcomes) if outcome is not None]
    if failures and good:
        rows[: len(good)] = rows[good]  # rare: only batches with undecodable files are moved
    return [batch.keys[row] for row in good], rows[: len(good)], failures


class _Threads:
    """Decoding threads of this process, for runs too small to repay starting processes."""

    def __init__(self, count: int, array: np.ndarray, spec: DecodeSpec):
        self._pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="featx-decode")
        self._array, self._spec = array, spec
        self._futures: deque[Future] = deque()

    def put(self, chunk) -> None:
        self._futures.append(self._pool.submit(decode_chunk, self._array, self._spec, *chunk))

    def next_result(self):
        return self._futures.popleft().result()

    def __enter__(self) -> _Threads:
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class _SharedBuffer:
    """A float32 array of ``shape`` in a file mapped by the parent and every worker.

    The file lives in /dev/shm when it has room (else the temporary folder) and is unlinked as soon
    as every worker has mapped it, so nothing is left behind even if the run is killed."""

    def __init__(self, shape: tuple[int, ...], shared: bool = True):
        nbytes = int(np.prod(shape)) * 4
        if not shared:  # threads: plain memory of this process
            self.path, self._map, self.array = None, None, np.empty(shape, np.float32)
            return
        folder = "/dev/shm" if _free_bytes("/dev/shm") > 2 * nbytes else None
        handle, name = tempfile.mkstemp(prefix="featx-decode-", dir=folder)
        self.path = Path(name)
        try:
            os.ftruncate(handle, nbytes)
            self._map = mmap.mmap(handle, nbytes)
        except BaseException:
            self.unlink()
            raise
        finally:
            os.close(handle)
        self.array = np.ndarray(shape, np.float32, self._map)

    def unlink(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> _SharedBuffer:
        return self

    def __exit__(self, *exc) -> None:
        self.unlink()
        del self.array
        try:
            if self._map is not None:
                self._map.close()
        except BufferError:  # a caller still holds a batch view: the mapping goes with it
            pass


def _free_bytes(folder: str) -> int:
    try:
        stat = os.statvfs(folder)
    except OSError:
        return 0
    return stat.f_bavail * stat.f_frsize


