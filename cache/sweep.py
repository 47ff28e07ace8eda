"""Sweeping what killed runs left beside a cache: temporaries, and segment or part files that no
committed index lists (unless a reader still holds them)."""

from __future__ import annotations

import os
from pathlib import Path

from featx.cache.readers import remove_unread
from featx.cache.schema import open_cache, read
from featx.cache.segments import segment_dir
from featx.errors import CacheError


def remove_stale_temporaries(cache_path: str | os.PathLike) -> None:
    """Delete what killed runs left beside the cache (call under the lock): temporary files, and
    segments that no committed index lists (written by a run killed before its index was, or left
    by a commit while a reader held them) unless a reader still holds them."""
    from featx.cache.shards import shard_dir

    cache_path = Path(cache_path)
    stale = list(cache_path.parent.glob(f".{cache_path.name}.*.tmp"))
    for folder in (shard_dir(cache_path), segment_dir(cache_path)):
        if folder.is_dir():
            stale += list(folder.glob(".*.tmp"))
    folder = segment_dir(cache_path)
    if folder.is_dir():
        listed = _listed_segments(cache_path)
        if listed is not None:
            remove_unread(cache_path, [p for p in folder.glob("*.h5") if p.name not in listed])
    for path in stale:
        path.unlink(missing_ok=True)


def _listed_segments(cache_path: Path) -> set[str] | None:
    """The segment names the committed index lists; None when it cannot be read (keep them all)."""
    if not cache_path.exists():
        return set()
    try:
        with open_cache(cache_path) as h5:
            return {name for table in ("segments", "parts") if table in h5 for name in read(h5[f"{table}/name"]).tolist()}
    except (CacheError, OSError, KeyError):  # a damaged index: keep every segment a repair could use
        return None
