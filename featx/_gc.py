"""Python's cyclic garbage collector paused while a run builds and joins a million small objects."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import gc
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic collection inside (a context manager or a decorator); reference counting still frees.

    A scan, a cache's tables and a run's plan create millions of records, strings and tuples that form
    no cycles, yet every 700 allocations wake the collector and its full passes walk all of them again:
    a third of an unchanged rerun at a million files (``benchmarks/scale.py``). Nested pauses are one.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def release_free_memory() -> None:
    """Give the memory that freed objects leave in the C heap back to the system (glibc's
    ``malloc_trim``; nothing elsewhere), after a stage that built and dropped millions of them.

    Freed memory stays in the process otherwise: after a scan of a million files ~60 bytes an image
    of it, counted in the peak of every stage after (``benchmarks/scale.py``). Dask's workers trim
    the same way."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None).malloc_trim  # glibc's; musl has none
    except (OSError, AttributeError):
        return None
