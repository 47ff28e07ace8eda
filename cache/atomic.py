"""Replacing a file atomically: written under a temporary name, flushed to disk, then renamed.

A crash at any moment leaves the old file or the new one, never a half-written one; a killed
run's temporaries (hidden ``.<name>.<pid>.tmp``) are removed by the next writer under the lock.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from featx._faults import crash_point
from featx.cache.schema import write_errors


@contextlib.contextmanager
def atomic_file(final: Path, *, before_rename: str) -> Iterator[Path]:
    """Yield a temporary path to write; on success fsync it, rename it to ``final``, fsync the
    folder. ``before_rename`` names the crash point between the complete file and its rename."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        with write_errors(final.parent):
            yield tmp
        with write_errors(final.parent):
            fsync_file(tmp)
            crash_point(before_rename)
            os.replace(tmp, final)
            fsync_dir(final.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


def fsync_file(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
