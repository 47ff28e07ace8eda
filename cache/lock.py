"""One writer per cache: an OS-level file lock next to the cache file.

The lock is an ``flock`` (via filelock), which the kernel releases when its process dies, so a
killed run never leaves a lock that blocks the next one. Readers take no lock: they open the
committed file, which writers only ever replace whole by a rename.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from featx.errors import CacheBusyError


def lock_path(cache_path: str | os.PathLike) -> Path:
    cache_path = Path(cache_path)
    return cache_path.with_name(cache_path.name + ".lock")


@contextlib.contextmanager
def cache_lock(
    cache_path: str | os.PathLike, *, wait: bool = True, on_wait: Callable[[str], None] | None = None
) -> Iterator[None]:
    """Hold the cache's writer lock; wait for it (saying so through ``on_wait``) or fail at once."""
    path = lock_path(cache_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        message = f"another featx run is updating {cache_path}"
        if not wait:
            raise CacheBusyError(f"{message}; rerun when it has finished, or let this run wait for it.") from None
        if on_wait:
            on_wait(f"{message}; waiting for it to finish (Ctrl-C to stop; committed work is kept)")
        lock.acquire()
    try:
        yield
    finally:
        lock.release()
