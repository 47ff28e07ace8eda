"""Readers and removers of segment files agree: a segment an open reader may still read is never deleted.

A reader (every :meth:`featx.cache.store.CacheIndex.read` unless told otherwise) holds a shared
``flock`` on the cache's segment folder from before it reads the index until its index object is
gone, so a lazy or streaming reader (``load_features(lazy=True)``, a streaming head's batches) can
read every segment its index lists even while ``featx cache compact`` or an embed replaces them.
A writer deletes the segments its new index no longer lists only when it can take that lock
exclusively, at once; otherwise it leaves them, and the next run under the cache's writer lock
sweeps them (:func:`featx.cache.store.remove_stale_temporaries`). A lock on a folder needs no write
access (read-only mounts work); where the file system has no ``flock``, readers go unlocked and
removers delete as before.
"""

from __future__ import annotations

import fcntl
import os
import weakref
from collections.abc import Iterable
from pathlib import Path

from featx.cache.segments import remove_files, segment_dir

__all__ = ["SegmentHold", "hold_segments", "remove_unread"]


class SegmentHold:
    """A shared lock on a segment folder, released by :meth:`release` or when garbage-collected."""

    def __init__(self, fd: int) -> None:
        self._finalizer = weakref.finalize(self, os.close, fd)

    def release(self) -> None:
        self._finalizer()

    def __reduce__(self):  # a lock does not travel to another process: there the index holds nothing
        return _nothing, ()


def _nothing() -> None:
    return None


def _open_folder(cache_path: str | os.PathLike) -> int | None:
    try:
        return os.open(segment_dir(cache_path), os.O_RDONLY | os.O_DIRECTORY)
    except OSError:  # no segment folder (a v1 or empty cache), or not readable: nothing to hold
        return None


def hold_segments(cache_path: str | os.PathLike) -> SegmentHold | None:
    """Hold the segments of ``cache_path`` readable until the result is released (None: nothing to hold)."""
    fd = _open_folder(cache_path)
    if fd is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH)  # a remover holds it exclusively only for its unlinks: a short wait
    except OSError:  # no flock on this file system: read unlocked
        os.close(fd)
        return None
    return SegmentHold(fd)


def remove_unread(cache_path: str | os.PathLike, files: Iterable[Path]) -> bool:
    """Delete the segment files ``files`` of ``cache_path`` (which its committed index no longer
    lists) unless a reader holds the segments; returns whether they were deleted (else a later run
    sweeps them). Call under the cache's writer lock."""
    files = list(files)
    if not files:
        return True
    fd = _open_folder(cache_path)
    if fd is None:
        remove_files(files)
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        except OSError:  # no flock here: readers cannot hold either
            pass
        remove_files(files)
        return True
    finally:
        os.close(fd)
