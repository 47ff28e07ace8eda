"""Python's cyclic garbage collector paused while a run builds and joins a million small objects."""

from __future__ import annotations

import contextlib
import gc
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
