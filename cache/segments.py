"""Segments: the immutable files that hold a committed cache's vectors.

A commit writes the vectors new to a cache into one new segment, ``<cache>.segments/<uuid>.h5``
(temporary name, fsync, rename), then replaces the small index file, ``<cache>`` itself, which
lists the segments. A committed segment is never written again, so an append costs what is new.
Every row of a segment was checked (finite, not absurd, the cache's width) before it was written;
the index records each segment's size, mtime and a sha256 of its ids and vector bytes, so a rerun
trusts a segment on a ``stat`` and reads it whole only when the stat differs.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path

import h5py
import numpy as np

from featx._faults import crash_point
from featx.cache.atomic import atomic_file
from featx.cache.schema import checksum_options, read, stamp
from featx.cache.tables import ID_DTYPE, SegmentTable, str_column
from featx.errors import CacheError

SEGMENT_TYPE = "featx-feature-segment"
CHUNK_ROWS = 256
BLOCK_ROWS = CHUNK_ROWS * 16  # rows read or written at a time: memory stays one block
MAX_MAGNITUDE = 1e30  # no backbone output comes near: a larger value is damage, not a feature
STORAGE_DTYPES = ("float32", "float16")
PART_PREFIX = "images-"  # the image table's part files share the folder (and its readers' lock): featx.cache.parts

Blocks = Iterable[tuple[np.ndarray, np.ndarray]]  # (ids S64, features)


def segment_dir(cache_path: str | Path) -> Path:
    cache_path = Path(cache_path)
    return cache_path.with_name(cache_path.name + ".segments")


def vector_segments(cache_path: str | Path) -> list[Path]:
    """The files of a cache's segment folder that hold vectors (not the image table's parts), sorted."""
    folder = segment_dir(cache_path)
    files = sorted(folder.glob("*.h5")) if folder.is_dir() else []
    return [p for p in files if not p.name.startswith(PART_PREFIX)]


def usable_rows(features: np.ndarray) -> np.ndarray:
    """Which rows of a (n, D) block are vectors a backbone could have produced: finite, not absurd."""
    with np.errstate(invalid="ignore", over="ignore"):
        return (np.abs(features.astype(np.float32, copy=False)) <= MAX_MAGNITUDE).all(axis=1)  # NaN: False


def lossy_rows(features: np.ndarray, dtype: str, tolerance: float = 1e-3) -> np.ndarray:
    """Which rows of a float32 block lose more than ``tolerance`` (relative) when stored as ``dtype``,
    or are all zero: float16 keeps 1e-3 only for values above 6e-5, so vectors of a tiny norm (random
    weights, an odd backbone) would be stored as noise or zeros."""
    features = np.asarray(features, np.float32)
    norms = np.linalg.norm(features, axis=1)
    if dtype == "float32":
        return norms == 0
    error = np.linalg.norm(features.astype(dtype).astype(np.float32) - features, axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (norms == 0) | ~(error <= tolerance * norms)


def write_segment(cache_path: Path, fingerprint: str, blocks: Blocks, feature_dim: int, dtype: str,
                  attrs: dict[str, object] | None = None) -> tuple[SegmentTable, np.ndarray]:
    """Write ``blocks`` (usable rows only: the caller checked them) as one new committed segment.

    Returns its one-row :class:`SegmentTable` and the ids it holds, or an empty table when there
    were no rows (no file is left then).
    """
    if feature_dim < 1:
        raise ValueError(f"feature_dim must be positive to write vectors; got {feature_dim}.")
    name = f"{uuid.uuid4().hex}.h5"
    final = segment_dir(cache_path) / name
    digest = _Digest()
    written: list[np.ndarray] = []
    attrs = {"fingerprint": fingerprint, **(attrs or {})}
    room = _free_bytes(final.parent)
    with atomic_file(final, before_rename="segment-written") as tmp, h5py.File(tmp, "w") as h5:
        stamp(h5, SEGMENT_TYPE)
        for key, value in attrs.items():
            h5.attrs[key] = value
        ids = h5.create_dataset("id", shape=(0,), maxshape=(None,), dtype=ID_DTYPE, chunks=(1024,),
                                **checksum_options(ID_DTYPE))
        features = h5.create_dataset("features", shape=(0, feature_dim), maxshape=(None, feature_dim),
                                     dtype=dtype, chunks=(CHUNK_ROWS, feature_dim), **checksum_options(dtype))
        rows = 0
        for block_ids, block in blocks:
            if len(block_ids) == 0:
                continue
            block_ids, block = np.asarray(block_ids, ID_DTYPE), np.asarray(block, dtype)
            _check_room(room, rows + len(block_ids), feature_dim, np.dtype(dtype).itemsize, final.parent)
            ids.resize((rows + len(block_ids),))
            features.resize((rows + len(block_ids), feature_dim))
            ids[rows:], features[rows:] = block_ids, block
            digest.update(block_ids, block)
            written.append(block_ids)
            rows += len(block_ids)
            crash_point("segment-writing")
        if rows == 0:
            raise _NoRows
    stat = final.stat()
    table = SegmentTable(name=str_column([name]), rows=np.asarray([rows], np.int64),
                         size=np.asarray([stat.st_size], np.int64), mtime_ns=np.asarray([stat.st_mtime_ns], np.int64),
                         digest=str_column([digest.hexdigest()]), attrs=str_column([json.dumps(attrs, sort_keys=True)]))
    return table, np.concatenate(written)


def _free_bytes(folder: Path) -> int | None:
    """Free bytes where ``folder`` lives (None when the system cannot tell)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _check_room(free: int | None, rows: int, width: int, itemsize: int, folder: Path) -> None:
    """Refuse, as the system would (ENOSPC), a segment that cannot fit in the ``free`` bytes there
    were when it started: HDF5 failing mid-write on a full disk can crash the process at exit."""
    chunks = -(-rows // CHUNK_ROWS)
    needed = chunks * CHUNK_ROWS * (width * itemsize + 64) + (64 << 10)  # whole chunks, ids, metadata
    if free is not None and needed > free:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(folder))


class _Digest:
    """sha256 over a segment's ids and its vector bytes, the same however the rows are blocked."""

    def __init__(self) -> None:
        self.ids, self.features = hashlib.sha256(), hashlib.sha256()

    def update(self, ids: np.ndarray, features: np.ndarray) -> None:
        self.ids.update(np.ascontiguousarray(ids).tobytes())
        self.features.update(np.ascontiguousarray(features).tobytes())

    def hexdigest(self) -> str:
        return hashlib.sha256(self.ids.digest() + self.features.digest()).hexdigest()


class _NoRows(Exception):
    """Raised inside :func:`write_segment` to leave no file when there is nothing to write."""


def write_segment_if_any(cache_path: Path, fingerprint: str, blocks: Blocks, feature_dim: int, dtype: str,
                         attrs: dict[str, object] | None = None) -> tuple[SegmentTable, np.ndarray]:
    """:func:`write_segment`, or (an empty table, no ids) when ``blocks`` hold no rows."""
    try:
        return write_segment(cache_path, fingerprint, blocks, feature_dim, dtype, attrs)
    except _NoRows:
        return SegmentTable.empty(), np.zeros(0, ID_DTYPE)


def stat_matches(cache_path: Path, segments: SegmentTable, i: int) -> bool:
    """Whether segment ``i`` still has the size and mtime recorded when it was committed."""
    try:
        stat = (segment_dir(cache_path) / segments.name[i]).stat()
    except OSError:
        return False
    return stat.st_size == segments.size[i] and stat.st_mtime_ns == segments.mtime_ns[i]


def iter_blocks(file: Path, dataset: str = "features", ids_dataset: str = "id",
                width: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Stream (ids, features as stored) of one vector file in blocks; a missing or damaged file, or
    vectors of another width than ``width``, raise one-line CacheError."""
    try:
        h5 = h5py.File(file, "r")
    except OSError as exc:
        raise CacheError(f"{file} is missing or not readable ({exc}); re-run 'featx embed' to repair the cache.") from exc
    with h5:
        ids, features = h5[ids_dataset], h5[dataset]
        if features.ndim != 2 or len(features) != len(ids) or (width is not None and features.shape[1] != width):
            raise CacheError(f"{file} holds vectors of shape {features.shape}, expected ({len(ids)}, {width}); "
                             "re-run 'featx embed' to repair the cache.")
        for start in range(0, len(ids), BLOCK_ROWS):
            stop = min(start + BLOCK_ROWS, len(ids))
            yield read(ids, np.s_[start:stop]).astype(ID_DTYPE), read(features, np.s_[start:stop])


def check_blocks(blocks: Blocks) -> tuple[np.ndarray, str]:
    """Read a segment whole: (a mask of its usable rows, the sha256 of its ids and vector bytes)."""
    digest = _Digest()
    masks = [np.zeros(0, bool)]
    for ids, features in blocks:
        digest.update(ids, features)
        masks.append(usable_rows(features))
    return np.concatenate(masks), digest.hexdigest()


def read_rows(file: Path, dataset: str, rows: np.ndarray) -> np.ndarray:
    """The rows ``rows`` (any order, repeats allowed) of one vector file, as stored."""
    try:
        h5 = h5py.File(file, "r")
    except OSError as exc:
        raise CacheError(f"{file} is missing or not readable ({exc}); re-run 'featx embed' to repair the cache.") from exc
    with h5:
        features = h5[dataset]
        unique, inverse = np.unique(rows, return_inverse=True)
        if len(unique) > len(features) // 2:
            return read(features)[rows]
        return _read_chunks(features, unique)[inverse]


def _read_chunks(features: h5py.Dataset, unique: np.ndarray) -> np.ndarray:
    """Rows ``unique`` (sorted, distinct) of ``features``, read as one slice per run of consecutive
    chunks that hold some (at most BLOCK_ROWS rows a read): the chunks a point selection would read,
    without h5py's cost per selected point (~0.5 ms a row: 8,192 scattered rows took 4 s, their
    chunks as slices 0.1 s)."""
    out = np.empty((len(unique), *features.shape[1:]), features.dtype)
    if len(unique) == 0:
        return out
    step = (features.chunks or (CHUNK_ROWS,))[0]
    per_read = max(1, BLOCK_ROWS // step)
    touched = np.unique(unique // step)
    for run in np.split(touched, np.flatnonzero(np.diff(touched) != 1) + 1):
        for first in range(0, len(run), per_read):
            lo, hi = int(run[first]) * step, min((int(run[min(first + per_read, len(run)) - 1]) + 1) * step, len(features))
            a, b = np.searchsorted(unique, [lo, hi])
            out[a:b] = read(features, slice(lo, hi))[unique[a:b] - lo]
    return out


def remove_files(files: Iterable[Path]) -> None:
    for file in files:
        file.unlink(missing_ok=True)


def write_virtual(group: h5py.Group, name: str, cache_path: Path, pieces: Iterable[tuple[str, str, int, int, int]],
                  dtype, width: int | None = None, fillvalue=None) -> None:
    """``group[name]``: an HDF5 virtual dataset over files of the segment folder, so plain h5py reads
    it as one array. ``pieces`` are (file name, dataset, rows in that dataset, start, length), in
    order; ``width`` makes it 2-D (vectors). A missing file reads as ``fillvalue``."""
    pieces = list(pieces)
    tail = () if width is None else (width,)
    total = sum(length for *_, length in pieces)
    if total == 0:
        group.create_dataset(name, shape=(0, *tail), dtype=dtype)
        return
    layout = h5py.VirtualLayout(shape=(total, *tail), dtype=dtype)
    at, folder = 0, segment_dir(cache_path).name
    for file, dataset, rows, start, length in pieces:
        source = h5py.VirtualSource(f"{folder}/{file}", dataset, shape=(rows, *tail), dtype=dtype)
        layout[at : at + length] = source[start : start + length]
        at += length
    group.create_virtual_dataset(name, layout, fillvalue=fillvalue)
