"""Decoding worker processes: started once, kept between runs, each writing into a shared batch buffer."""

from __future__ import annotations

import atexit
import mmap
import os
import signal
import subprocess
import sys
from collections import deque
from multiprocessing.connection import Connection, wait
from pathlib import Path

import numpy as np

from featx.engine.pixels import DecodeSpec, decode_chunk
from featx.errors import DecodeWorkerError

_READY = "ready"


_MAP = "map"


_UNMAP = "unmap"


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


def borrow_workers(count: int, buffer: Path, shape: tuple[int, ...], spec: DecodeSpec) -> _Workers:
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


_idle: _Workers | None = None  # workers kept between runs of this process (starting them costs ~0.3 s)


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
                    [sys.executable, *_SAFE_PATH, "-c", "from featx.engine.workers import _serve; _serve()"],
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

    def __enter__(self) -> _Workers:
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
                send.send(decode_chunk(array, spec, *message))
    except (EOFError, BrokenPipeError):  # the parent is done, or gone
        return
