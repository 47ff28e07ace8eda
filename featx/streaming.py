"""Decoding images in worker processes, ahead of the backbone, straight into shared batch buffers.

Pillow and the NumPy resize hold the GIL for much of their work, so decoding threads stop scaling
at about four; worker processes scale with the cores. Each worker writes the pixels it decodes
straight into its row of one shared buffer of ``slots`` batches, and the parent hands that batch to
the backbone as a view, without copying it. At most ``slots`` batches are in flight, so memory
stays flat whatever the dataset size, and the backbone computes one batch while the workers decode
the next ones. Batches keep the input order; a file that does not decode is reported with the same
reason as :func:`featx.images.load_image` gives. A worker that dies (killed, out of memory) fails the
run with one :class:`DecodeWorkerError` line; what was committed before stays, and a rerun resumes.
"""

from __future__ import annotations

import atexit
import hashlib
import mmap
import os
import signal
import subprocess
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Generic, TypeVar

import numpy as np

from featx._faults import crash_point
from featx.errors import DecodeWorkerError, ImageDecodeError
from featx.fileindex import os_reason
from featx.objectstore import read_bytes
from featx.images import DEFAULT_MAX_PIXELS, load_image
from featx.objectstore import read_bytes

T = TypeVar("T")

CHANGED = "changed during the run (rerun to embed it)"
SLOTS = 3  # batches in flight: one with the backbone, two being decoded
# Starting a worker process costs about what decoding 100 small images does: smaller runs use threads.
PROCESS_MIN_IMAGES = 256
DECODER_ENV = "FEATX_DECODER"  # "processes" or "threads" overrides use_processes (benchmarks, tests)
_READY = "ready"
_MAP = "map"
_UNMAP = "unmap"


class NotAsPlannedError(ImageDecodeError):
    """The file's bytes were not the planned ones when read to decode (changed, removed or
    unreadable since it was hashed): this says nothing about the planned content."""


def load_planned(path: Path | str, size: int, resize: str, max_pixels: int, sha256: bytes | None,
                 jpeg_draft: bool = False) -> np.ndarray | ImageDecodeError:
    """Model input for one planned file, or why not: with ``sha256``, decoded from the very bytes that
    hash to it (else a :class:`NotAsPlannedError`). Every engine and decoder decodes through here."""
    crash_point("decoding")
    source: Path | bytes = path
    if sha256 is not None:  # decode the very bytes whose hash is checked: never another content
        try:
            source = read_bytes(path)  # a local path or a URL
        except OSError as exc:
            return NotAsPlannedError(os_reason(exc))
        if hashlib.sha256(source).hexdigest().encode() != sha256:
            return NotAsPlannedError(CHANGED)
    try:
        return load_image(source, (size, size), resize, max_pixels, jpeg_draft=jpeg_draft)
    except ImageDecodeError as exc:
        return exc


@dataclass(frozen=True)
class DecodeSpec:
    """How every file of a run becomes pixels: what the workers need besides the files."""

    size: int
    resize: str = "stretch"
    max_pixels: int = DEFAULT_MAX_PIXELS
    jpeg_draft: bool = False


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
        _borrow_workers(workers, shared.path, shape, spec) if processes else _Threads(workers, shared.array, spec)
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


def _decode_chunk(array: np.ndarray, spec: DecodeSpec, slot: int, first: int, entries: list):
    """Decode ``entries`` ``[(path, sha256)]`` into rows ``first...`` of batch ``slot`` of ``array``;
    return ``(slot, first, outcomes)``, each outcome None or ``(not as planned?, reason)``."""
    outcomes: list[tuple[bool, str] | None] = []
    for row, (path, expected) in enumerate(entries, start=first):
        pixels = load_planned(path, spec.size, spec.resize, spec.max_pixels, expected, spec.jpeg_draft)
        if isinstance(pixels, ImageDecodeError):
            outcomes.append((isinstance(pixels, NotAsPlannedError), str(pixels)))
        else:
            array[slot, row] = pixels
            outcomes.append(None)
    return slot, first, outcomes


class _Threads:
    """Decoding threads of this process, for runs too small to repay starting processes."""

    def __init__(self, count: int, array: np.ndarray, spec: DecodeSpec):
        self._pool = ThreadPoolExecutor(max_workers=count, thread_name_prefix="featx-decode")
        self._array, self._spec = array, spec
        self._futures: deque[Future] = deque()

    def put(self, chunk) -> None:
        self._futures.append(self._pool.submit(_decode_chunk, self._array, self._spec, *chunk))

    def next_result(self):
        return self._futures.popleft().result()

    def __enter__(self) -> "_Threads":
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

    def __enter__(self) -> "_SharedBuffer":
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


def start_workers(count: int) -> None:
    """Start ``count`` decoding processes now (they take a moment to import), for the next
    :func:`decode_batches` with that many workers; an embed run calls it before building the backbone."""
    global _idle
    env = _worker_env()
    if _idle is not None and (len(_idle.processes) != count or _idle.env != env or not _idle.alive()):
        _idle.close()
        _idle = None
    if _idle is None:
        _idle = _Workers(count, env)


def _borrow_workers(count: int, buffer: Path, shape: tuple[int, ...], spec: DecodeSpec) -> "_Workers":
    """The kept workers (started if needed), mapped onto this run's buffer; a run that ends
    cleanly gives them back for the next run, any other ending stops them."""
    global _idle
    start_workers(count)
    pool, _idle = _idle, None
    pool.attach(buffer, shape, spec)
    return pool


def _worker_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("FEATX_")}


# Workers find this featx through PYTHONPATH, not through the working folder (-P: Python 3.11+).
_SAFE_PATH = ("-P",) if sys.version_info >= (3, 11) else ()
_idle: "_Workers | None" = None  # workers kept between runs of this process (starting them costs ~0.3 s)


class _Workers:
    """``count`` decoding processes, each fed over its own pipe, at most two chunks ahead.

    They are fresh interpreters (not forks of this process, whose backbone threads must not be
    forked; not multiprocessing's spawn, which would rerun the caller's script in each worker). A
    worker reads until its pipe closes, so none outlives this process by more than a chunk."""

    def __init__(self, count: int, env: dict[str, str]):
        self.env = env
        self._buffer: Path | None = None
        self._ready = 0
        self._chunks: deque = deque()
        self.processes: list[subprocess.Popen] = []
        self._send: list[Connection] = []
        self._receive: list[Connection] = []
        self._outstanding: list[int] = []
        root = str(Path(__file__).resolve().parent.parent)  # this featx, wherever it was imported from
        path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        try:
            for _ in range(count):
                process = subprocess.Popen(
                    [sys.executable, *_SAFE_PATH, "-c", "from featx.streaming import _serve; _serve()"],
                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": path},
                )
                self.processes.append(process)
                self._send.append(Connection(os.dup(process.stdin.fileno()), readable=False))
                self._receive.append(Connection(os.dup(process.stdout.fileno()), writable=False))
                process.stdin.close()
                process.stdout.close()
                self._outstanding.append(0)
        except BaseException:
            self.close()
            raise
        atexit.register(self.close)

    def alive(self) -> bool:
        return all(process.poll() is None for process in self.processes)

    def attach(self, buffer: Path, shape: tuple[int, ...], spec: DecodeSpec) -> None:
        """Map every worker onto this run's ``buffer`` (unlinked once all have it)."""
        self._buffer, self._ready = buffer, 0
        for worker, connection in enumerate(self._send):
            try:
                connection.send((_MAP, str(buffer), shape, spec))
            except OSError:
                self._fail(worker)

    def put(self, chunk) -> None:
        """Queue one chunk ``(slot, first row, [(path, sha256)])`` for the next free worker."""
        self._chunks.append(chunk)
        self._dispatch()

    def _dispatch(self) -> None:
        for worker in range(len(self._outstanding)):
            while self._chunks and self._outstanding[worker] < 2:
                try:
                    self._send[worker].send(self._chunks[0])
                except OSError:
                    self._fail(worker)
                self._chunks.popleft()
                self._outstanding[worker] += 1

    def next_result(self):
        """The next finished chunk ``(slot, first row, outcomes)``; a dead worker fails the run."""
        while True:
            for connection in wait(self._receive):
                worker = self._receive.index(connection)
                try:
                    message = connection.recv()
                except (EOFError, OSError):
                    self._fail(worker)
                if message == _READY:
                    self._ready += 1
                    if self._ready == len(self.processes) and self._buffer is not None:
                        self._buffer.unlink(missing_ok=True)  # every worker has it mapped
                    continue
                self._outstanding[worker] -= 1
                self._dispatch()
                return message

    def _fail(self, worker: int):
        process = self.processes[worker]
        try:
            code = process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            code = None
        how = (f"was killed by signal {-code}" if code is not None and code < 0
               else f"stopped (exit code {code})")
        if code in (-signal.SIGKILL, -signal.SIGBUS):
            how += ", perhaps out of memory"
        raise DecodeWorkerError(
            f"a decoding worker process {how}; the batches finished before it are kept: rerun to resume "
            "(with a smaller {param} if memory is short).", param="workers",
        )

    def __enter__(self) -> "_Workers":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        global _idle
        clean = kind is None and not self._chunks and not any(self._outstanding) and self.alive()
        if clean and _idle is None:
            try:
                while self._ready < len(self.processes):  # a worker that got no chunk: read its answer
                    self.next_result()
            except DecodeWorkerError:
                clean = False
        if clean and _idle is None:
            try:
                for connection in self._send:
                    connection.send((_UNMAP,))  # the run's buffer is freed with the last mapping
            except OSError:
                clean = False
        if clean and _idle is None:
            _idle = self  # nothing in flight: the next run may use them
        else:
            self.close()

    def close(self) -> None:
        """Stop the workers (closing their pipes ends them), ending any that does not."""
        for connection in self._send + self._receive:
            connection.close()
        for process in self.processes:
            try:
                process.wait(timeout=2)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _serve() -> None:
    """A worker process: map each run's shared buffer when told, decode each chunk sent into its
    rows and answer with the outcomes, until the parent closes the pipe (or dies)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    receive = Connection(os.dup(0), writable=False)
    send = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # stray prints go to stderr, never into the pipe
    array = spec = None
    try:
        while True:
            message = receive.recv()
            if message[0] == _UNMAP:
                array = None
            elif message[0] == _MAP:
                _, buffer, shape, spec = message
                with open(buffer, "r+b") as handle:
                    array = np.ndarray(shape, np.float32, mmap.mmap(handle.fileno(), 0))
                send.send(_READY)
            else:
                send.send(_decode_chunk(array, spec, *message))
    except (EOFError, BrokenPipeError):  # the parent is done, or gone
        return
