"""The committed cache: its index file (every table, the list of segments) and reading vectors.

The index, ``<cache>.h5``, is small and only ever replaced whole (:func:`write_index`); the vectors
live in immutable segment files (``featx.cache.segments``) that it lists. Caches of schema v1 kept
their vectors in the index file itself: they are read as one segment, and the next embed moves
them into a segment (the upgrade).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from featx.cache.atomic import atomic_file
from featx.cache.schema import checksum_options, open_cache, read, stamp
from featx.cache.segments import (MAX_MAGNITUDE, CHUNK_ROWS, segment_dir, iter_blocks, read_rows,
                                  usable_rows)
from featx.cache.tables import ID_DTYPE, STR, ImageTable, SegmentTable, SkipTable
from featx.errors import CacheError

__all__ = ["CHUNK_ROWS", "MAX_MAGNITUDE", "CacheIndex", "Source", "read_vectors", "usable_rows", "write_index"]


@dataclass(frozen=True)
class Source:
    """Where rows ``start:stop`` of ``/vectors/id`` have their vectors: a dataset of one file."""

    file: Path
    dataset: str
    start: int
    stop: int
    segment: int  # row of the segment table; -1 for a v1 cache's own vectors
    ids_dataset: str = "id"

    def blocks(self, width: int | None = None):
        return iter_blocks(self.file, self.dataset, self.ids_dataset, width)


@dataclass
class CacheIndex:
    """Everything in a committed cache except the vectors themselves."""

    attrs: dict[str, object]
    classes: list[str]
    images: ImageTable
    skipped: SkipTable
    vector_ids: np.ndarray  # S64, in segment order
    segments: SegmentTable = field(default_factory=SegmentTable.empty)
    version: int = 2
    path: Path | None = None
    config: dict[str, object] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return str(self.attrs.get("fingerprint", ""))

    @property
    def dtype(self) -> str:
        """How the vectors are stored: float32 or float16 (reads return float32)."""
        return str(self.attrs.get("dtype", "float32"))

    @classmethod
    def read(cls, path: str | os.PathLike) -> "CacheIndex":
        with open_cache(path) as h5:
            attrs = {key: _plain(value) for key, value in h5.attrs.items()}
            version = int(attrs.get("encoding-version", 1))
            return cls(
                attrs=attrs,
                classes=list(read(h5["classes"])),
                images=ImageTable.read(h5["images"]),
                skipped=SkipTable.read(h5["skipped"]),
                vector_ids=read(h5["vectors/id"]).astype(ID_DTYPE),
                segments=SegmentTable.read(h5["segments"]) if version >= 2 else SegmentTable.empty(),
                version=version,
                path=Path(path),
                config=json.loads(attrs.get("config", "{}")),
            )

    def sources(self) -> list[Source]:
        """Where each row of ``vector_ids`` is stored, segment by segment."""
        if self.version < 2:
            return [Source(Path(str(self.path)), "vectors/features", 0, len(self.vector_ids), -1, "vectors/id")]
        folder, start, out = segment_dir(self.path), 0, []
        for i, (name, rows) in enumerate(zip(self.segments.name, self.segments.rows)):
            out.append(Source(folder / name, "features", start, start + int(rows), i))
            start += int(rows)
        return out


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_vectors(index: CacheIndex, rows: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """The feature rows at ``rows`` (indices into ``index.vector_ids``; any order, repeats allowed),
    read across the segments, as ``dtype``."""
    width = int(index.attrs.get("feature_dim", 0))
    out = np.zeros((len(rows), width), dtype)
    rows = np.asarray(rows, np.int64)
    for source in index.sources():
        mine = np.flatnonzero((rows >= source.start) & (rows < source.stop))
        if len(mine):
            block = read_rows(source.file, source.dataset, rows[mine] - source.start)
            if block.shape[1] != width:
                raise CacheError(f"{source.file} holds vectors {block.shape[1]} wide, the cache says {width}; "
                                 "re-run 'featx embed' to repair the cache.")
            out[mine] = block
    return out


def write_index(
    path: Path,
    *,
    attrs: dict[str, object],
    classes: list[str],
    images: ImageTable,
    skipped: SkipTable,
    segments: SegmentTable,
    vector_ids: np.ndarray,
    feature_dim: int,
    dtype: str,
) -> None:
    """Replace the index file at ``path`` atomically; it lists ``segments`` (already committed)."""
    with atomic_file(path, before_rename="index-written") as tmp, h5py.File(tmp, "w") as h5:
        for key, value in {**attrs, "feature_dim": feature_dim, "dtype": dtype}.items():
            if not key.startswith("encoding-"):
                h5.attrs[key] = value
        stamp(h5)
        h5.create_dataset("classes", data=np.asarray(classes, dtype=object), dtype=STR)
        group = h5.create_group("vectors")
        stamp(group)
        ids = group.create_dataset("id", shape=(len(vector_ids),), maxshape=(None,), dtype=ID_DTYPE, chunks=(1024,),
                                   **checksum_options(ID_DTYPE))
        ids[:] = np.asarray(vector_ids, ID_DTYPE)
        _virtual_features(group, path, segments, feature_dim, dtype)
        for name, table in (("images", images), ("skipped", skipped), ("segments", segments)):
            group = h5.create_group(name)
            stamp(group)
            table.write(group)


def _virtual_features(group: h5py.Group, path: Path, segments: SegmentTable, width: int, dtype: str) -> None:
    """``/vectors/features``: an HDF5 virtual dataset over the segments (row i is ``/vectors/id``'s
    row i), so plain h5py reads the whole cache as one array; a missing segment reads as NaN."""
    total = int(segments.rows.sum())
    if total == 0:
        group.create_dataset("features", shape=(0, width), dtype=dtype)
        return
    layout = h5py.VirtualLayout(shape=(total, width), dtype=dtype)
    start = 0
    for name, rows in zip(segments.name, segments.rows):
        rows = int(rows)
        layout[start : start + rows] = h5py.VirtualSource(f"{segment_dir(path).name}/{name}", "features",
                                                          shape=(rows, width), dtype=dtype)
        start += rows
    group.create_virtual_dataset("features", layout, fillvalue=np.nan)


def remove_stale_temporaries(cache_path: str | os.PathLike) -> None:
    """Delete what killed runs left beside the cache (call under the lock): temporary files, and
    segments that no committed index lists (written by a run killed before its index was)."""
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
            stale += [p for p in folder.glob("*.h5") if p.name not in listed]
    for path in stale:
        path.unlink(missing_ok=True)


def _listed_segments(cache_path: Path) -> set[str] | None:
    """The segment names the committed index lists; None when it cannot be read (keep them all)."""
    if not cache_path.exists():
        return set()
    try:
        with open_cache(cache_path) as h5:
            return set(read(h5["segments/name"]).tolist()) if "segments" in h5 else set()
    except (CacheError, OSError, KeyError):  # a damaged index: keep every segment a repair could use
        return None
