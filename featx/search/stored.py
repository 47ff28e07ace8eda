"""The approximate index that follows the cache: one faiss file per immutable segment, beside it.

``<cache>.h5.search/<segment>--<digest>--<fingerprint>.faiss`` is the index of one segment, named by
what it indexes: the segment's name, the sha256 of its ids and vector bytes (from the cache's
segment table) and the cache's fingerprint. A segment that an embed added gets its own file, so
adding images indexes only the new segment; an index whose segment was replaced or compacted away,
or that does not read back as the segment's rows, is stale: never used, rebuilt, and its file
deleted. Files are written to a temporary name and renamed, like the cache's own.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from featx.cache.locate import SEARCH_INDEX_SUFFIX as INDEX_SUFFIX
from featx.cache.locate import search_dir, search_index_path
from featx.cache.segments import read_rows
from featx.cache.store import CacheIndex, Source
from featx.search import ann
from featx.search.exact import unit


@dataclass
class IndexReport:
    """What opening a cache's index did: segments whose index was reused, built, or left unstored."""

    reused: list[str] = field(default_factory=list)
    built: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unstored: list[str] = field(default_factory=list)  # built in memory; the folder could not be written
    seconds: float = 0.0


def index_path(cache: CacheIndex, segment: int) -> Path:
    """Where the index of segment ``segment`` (row of the segment table) of ``cache`` lives."""
    return search_index_path(cache.path, str(cache.segments.name[segment]), str(cache.segments.digest[segment]),
                             cache.fingerprint)


def open_index(cache: CacheIndex, *, seed: int = 0) -> tuple[list[tuple[object, int]], IndexReport]:
    """The index of every segment of ``cache`` as (faiss index, first vector row), building what is
    missing or stale (and storing it beside the cache when it can), deleting files no segment owns."""
    faiss = ann.import_faiss()
    started = time.perf_counter()
    report = IndexReport()
    width = int(cache.attrs.get("feature_dim", 0))
    parts, wanted = [], set()
    for source in cache.sources():
        if source.segment < 0:  # a v1 cache keeps its vectors in the index file: indexed as one part, unstored
            parts.append((_build(source, width, seed), source.start))
            report.unstored.append(str(cache.path))
            continue
        path = index_path(cache, source.segment)
        wanted.add(path.name)
        index = _read(faiss, path, source.stop - source.start, width)
        if index is not None:
            report.reused.append(path.name)
        else:
            index = _build(source, width, seed)
            (report.built if _store(faiss, index, path) else report.unstored).append(path.name)
        parts.append((index, source.start))
    report.removed = _remove_others(search_dir(cache.path), wanted)
    report.seconds = time.perf_counter() - started
    return parts, report


def _read(faiss, path: Path, rows: int, width: int):
    """The stored index at ``path`` when it reads back whole with ``rows`` vectors ``width`` wide, else None."""
    if not path.is_file():
        return None
    try:  # the float vectors memory-mapped, not read: opening a 1M index reads its codes only
        index = faiss.read_index(str(path), getattr(faiss, "IO_FLAG_MMAP_IFC", 0) | faiss.IO_FLAG_READ_ONLY)
    except (RuntimeError, OSError):  # a damaged or truncated file: stale
        return None
    return index if index.ntotal == rows and index.d == width else None


def _build(source: Source, width: int, seed: int):
    rows = source.stop - source.start
    sample = None
    if ann.lists_for(rows):
        sample = unit(read_rows(source.file, source.dataset, ann.training_rows(rows, seed)))
    return ann.build((unit(block) for _, block in source.blocks(width)), rows, width, sample=sample, seed=seed)


def _store(faiss, index, path: Path) -> bool:
    """Write ``index`` at ``path`` (temporary name, then rename); False when the folder is not writable."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(exist_ok=True)
        faiss.write_index(index, str(tmp))
        os.replace(tmp, path)
        return True
    except (RuntimeError, OSError):
        if tmp.parent.is_dir():
            tmp.unlink(missing_ok=True)
        return False


def _remove_others(folder: Path, wanted: set[str]) -> list[str]:
    """Delete the index files in ``folder`` that no current segment owns (stale, or compacted away)."""
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.glob(f"*{INDEX_SUFFIX}"):
        if path.name not in wanted:
            try:
                path.unlink()
                removed.append(path.name)
            except OSError:
                pass
    return removed


def stored_indexes(cache_path: str | os.PathLike) -> list[Path]:
    """The index files beside a cache."""
    folder = search_dir(cache_path)
    return sorted(folder.glob(f"*{INDEX_SUFFIX}")) if folder.is_dir() else []

