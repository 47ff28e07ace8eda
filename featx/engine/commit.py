"""The sequence every embed run follows, plain vectors and views alike.

Lock the cache (:func:`locked_run`), plan from what is committed and what shards a killed run left
(:func:`plan_run`), embed only the rest (each batch a shard: the caller's loop), then commit a new
segment and index only when something changed (:meth:`RunPlan.commit_if_changed`). One run at a
time holds a cache; a read-only cache serves every run that has nothing to write.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from featx._gc import gc_paused, release_free_memory
from featx.cache.append import SegmentPlan, changed_index, commit, committed_work, plan_segments, unwritable
from featx.cache.idset import IdSet
from featx.cache.lock import cache_lock
from featx.cache.segments import lossy_rows
from featx.cache.store import CacheIndex
from featx.cache.sweep import remove_stale_temporaries
from featx.cache.tables import ImageTable, SkipTable
from featx.engine.fileindex import Matched
from featx.errors import OptionError


def check_keepable(vectors, *, dtype: str, precision: str) -> None:
    """Refuse a batch of vectors the cache would keep wrong, before it is written: all zero where the
    backbone computed in float16 (its features underflowed), or changed by more than 1e-3 when stored
    as float16 (features of a tiny norm). Nothing lands; what was committed before stays."""
    import numpy as np

    vectors = np.asarray(vectors, np.float32)
    if precision == "float16" and (zero := ~vectors.any(axis=1)).any():
        raise OptionError(f"{int(zero.sum())} of {len(vectors)} vectors of a batch came out all zero with {{param}} float16: "
                          "this backbone's features underflow float16. Embed with {param} float32 (or bfloat16).",
                          param="precision")
    if dtype != "float32" and (lossy := lossy_rows(vectors, dtype) & vectors.any(axis=1)).any():
        largest = float(np.abs(vectors[lossy]).max())
        raise OptionError(f"{int(lossy.sum())} of {len(vectors)} vectors of a batch are too small to store as {dtype} within "
                          f"1e-3 (largest value {largest:.1e}; {dtype} keeps 1e-3 only above 6e-5). Store them with "
                          "{param} float32.", param="dtype")


@contextlib.contextmanager
def locked_run(path: Path, *, wait: bool = True, on_wait: Callable[[str], None] | None = None) -> Iterator[bool]:
    """Hold the lock of the cache at ``path`` for one run; yields whether the run may write there
    (its own leftover temporaries are removed first)."""
    with cache_lock(path, wait=wait, on_wait=on_wait, read_only_ok=True) as writable:
        if writable:
            remove_stale_temporaries(path)
        yield writable


@dataclass
class RunPlan:
    """What a run starts from: the committed index, which of its segments to trust, and the ids
    that already have a vector (``have``, committed or in shards) or are known not to decode."""

    path: Path
    fingerprint: str
    writable: bool
    index: CacheIndex | None
    segments: SegmentPlan
    have: IdSet
    failed: dict[bytes, str]
    embedded: set[bytes] = field(default_factory=set)  # what this run added to ``have`` (the rest is reused)

    def add(self, ids) -> None:
        """Ids this run embedded."""
        ids = list(ids)
        self.have.update(ids)
        self.embedded.update(ids)

    def require_writable(self, why: str) -> None:
        """Refuse, before any work, a run that must write where it cannot."""
        if not self.writable:
            raise unwritable(self.path, why)

    @gc_paused()
    def commit_if_changed(self, *, images: ImageTable, skipped: SkipTable, classes: list[str], root: str,
                          attrs: Callable[[], dict[str, object]], feature_dim: int, dtype: str,
                          embedded: set[bytes], why: str, matched: Matched | None = None) -> bool:
        """Commit ``images`` and ``skipped`` (one new segment, then the index) unless the committed
        index already says exactly that (``matched``: how ``images`` lines up with the committed
        table, where the index was read without it); ``why`` names what changed for a read-only
        cache's error."""
        same = matched.same_table(images) if matched is not None else None
        if not changed_index(self.index, self.segments, self.path, images, skipped, classes, root, same):
            return False
        self.require_writable(why)
        release_free_memory()  # what embedding freed: the commit's peak is the run's
        commit(self.path, self.index, self.segments, attrs=attrs(), classes=classes, images=images,
               skipped=skipped, feature_dim=feature_dim, dtype=dtype, embedded=embedded,
               unchanged=matched.unchanged_rows if matched is not None else None)
        return True


@gc_paused()
def plan_run(path: Path, index: CacheIndex | None, fingerprint: str, width: int, writable: bool) -> RunPlan:
    """The plan of a run on ``path`` under ``fingerprint`` with vectors ``width`` wide (0 while
    only the backbone can tell)."""
    segments = plan_segments(index, width)
    have, failed = committed_work(index, segments, path, fingerprint, width)
    return RunPlan(path, fingerprint, writable, index, segments, have, failed)
