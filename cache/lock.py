"""One writer per cache: an OS-level file lock next to the cache file.

The lock is an ``flock`` (via filelock), which the kernel releases when its process dies, so a
killed run never leaves a lock that blocks the next one. Readers take no lock: they open the
committed file, which writers only ever replace whole by a rename.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from featx.errors import CacheBusyError


def lock_path(cache_path: str | os.PathLike) -> Path:
    cache_path = Path(cache_path)
    return cache_path.with_name(cache_path.name + ".lock")


UNWRITABLE = (errno.EACCES, errno.EPERM, errno.EROFS)  # what a read-only mount or folder answers


@contextlib.contextmanager
def cache_lock(
    cache_path: str | os.PathLike, *, wait: bool = True, on_wait: Callable[[str], None] | None = None,
    read_only_ok: bool = False,
) -> Iterator[bool]:
    """Hold the cache's writer lock; wait for it (saying so through ``on_wait``) or fail at once.

    Yields True. With ``read_only_ok``, a place where the lock cannot be created because it is not
    writable (a read-only mount or folder) yields False instead of failing: the caller may then
    read the cache, but must write nothing (a run with nothing new needs no write access).
    """
    path = lock_path(cache_path)
    writable = True
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path))
        lock.acquire(timeout=0)
    except Timeout:
        message = f"another featx run is updating {cache_path}"
        if not wait:
            raise CacheBusyError(f"{message}; rerun when it has finished, or let this run wait for it.") from None
        if on_wait:
            on_wait(f"{message}; waiting for it to finish (Ctrl-C to stop; committed work is kept)")
        lock.acquire()
    except OSError as exc:
        if not (read_only_ok and exc.errno in UNWRITABLE):
            raise
        writable = False
    if not writable:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()
