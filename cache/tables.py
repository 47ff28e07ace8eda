"""The per-file tables of a cache (images, skipped) as NumPy columns, and their HDF5 encoding."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import ClassVar

import h5py
import numpy as np

from featx.cache.packed import read_packed
from featx.cache.schema import checksum_options, read

STR = h5py.string_dtype("utf-8")
ID_DTYPE = "S64"  # sha256 hex digest of the file's bytes
_BLOCK = 65536  # rows compared at a time in a join


def str_column(values) -> np.ndarray:
    return np.asarray(list(values), dtype=object)


def id_column(values) -> np.ndarray:
    return np.asarray(list(values), dtype=ID_DTYPE)


def rows_of(keys: np.ndarray, wanted) -> np.ndarray:
    """The row of each of ``wanted`` in ``keys`` (unique values, e.g. content ids), -1 where absent:
    sorted arrays and a binary search, no dict of a million Python objects. Content ids (S64) and
    paths (str objects) are sorted by 64-bit hashes (a million in a fraction of a second), every
    match then checked against the key itself."""
    keys, wanted = np.asarray(keys), np.asarray(wanted)
    if len(keys) == 0 or len(wanted) == 0:
        return np.full(len(wanted), -1, np.int64)
    sortable, sought = keys, wanted
    if keys.dtype == np.dtype(ID_DTYPE) and wanted.dtype == keys.dtype:
        sortable, sought = id_hashes(keys), id_hashes(wanted)
    elif keys.dtype == object and wanted.dtype == object:  # paths: Python's own (cached) string hashes
        sortable, sought = _object_hashes(keys), _object_hashes(wanted)
    order = np.argsort(sortable, kind="stable")
    ordered = sortable[order]
    if sortable is not keys and len(ordered) > 1 and bool((ordered[1:] == ordered[:-1]).any()):
        return _sorted_rows_of(keys, wanted)  # two keys share a hash: compare them whole
    return _matched(keys, wanted, order, np.searchsorted(ordered, sought))


def _sorted_rows_of(keys: np.ndarray, wanted: np.ndarray) -> np.ndarray:
    order = np.argsort(keys, kind="stable")
    return _matched(keys, wanted, order, np.searchsorted(keys, wanted, sorter=order))


def _object_hashes(values: np.ndarray) -> np.ndarray:
    return np.fromiter(map(hash, values.tolist()), np.int64, len(values))


def _matched(keys: np.ndarray, wanted: np.ndarray, order: np.ndarray, place: np.ndarray) -> np.ndarray:
    place = np.minimum(place, len(keys) - 1)
    rows = order[place].astype(np.int64)
    for start in range(0, len(rows), _BLOCK):  # a block at a time: the matched keys are gathered to compare
        block = rows[start : start + _BLOCK]
        block[keys[block] != wanted[start : start + _BLOCK]] = -1
    return rows


def sorted_hashes(hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(order, hashes in that order) of 64-bit ``hashes``, which it consumes: the order as int32 where
    it fits (12 bytes a row held, not 24 with the hashes themselves)."""
    order = np.argsort(hashes, kind="stable")
    if len(order) < 2**31 - 1:
        order = order.astype(np.int32)
    ordered = hashes[order]
    del hashes
    return order, ordered


def id_hashes(ids: np.ndarray) -> np.ndarray:
    """A 64-bit hash of each content id (S64), to sort and join millions of them as integers."""
    words = np.ascontiguousarray(ids, ID_DTYPE).view(np.uint64).reshape(len(ids), 8)
    mixed = np.zeros(len(ids), np.uint64)
    for k in range(8):
        mixed = (mixed ^ words[:, k]) * np.uint64(0x100000001B3 + 2 * k)  # FNV-style, wrapping
    return mixed


def has_repeats(ids: np.ndarray) -> bool:
    """Whether a content id appears twice in ``ids`` (S64), sorting their hashes."""
    hashed = np.sort(id_hashes(ids))
    if len(hashed) < 2 or not bool((hashed[1:] == hashed[:-1]).any()):
        return False
    return len(np.unique(ids)) != len(ids)  # a shared hash: compare the ids themselves


def column_names(table) -> list[str]:
    """The column names of a :class:`Table` (class or instance)."""
    return [f.name for f in fields(table)]


def _read_column(dataset: h5py.Dataset, categorical: bool) -> np.ndarray:
    """A column as NumPy; text block by block (h5py holds each value as bytes and as str while it
    decodes: a block at a time, not a million), and a categorical column with one shared str per
    value (a million splits read as a million separate "train" objects would cost 50 MB)."""
    if dataset.dtype.kind != "O":
        return np.asarray(read(dataset))
    shared: dict[str, str] = {}
    out = np.empty(len(dataset), dtype=object)
    for start in range(0, len(dataset), 65536):
        block = read(dataset, np.s_[start : start + 65536])
        out[start : start + len(block)] = [shared.setdefault(v, v) for v in block.tolist()] if categorical else block
    return out


@dataclass
class Table:
    """Columns of equal length; subclasses declare them as fields."""

    def __len__(self) -> int:
        return len(getattr(self, fields(self)[0].name))

    def take(self, index) -> Table:
        return type(self)(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def write(self, group: h5py.Group) -> None:
        for f in fields(self):
            column = getattr(self, f.name)
            dtype = STR if column.dtype == object else column.dtype
            group.create_dataset(f.name, data=column, dtype=dtype, **checksum_options(dtype))

    @classmethod
    def read(cls, group: h5py.Group, packed: tuple[str, ...] = ()) -> Table:
        """The table stored in ``group``; the text columns named in ``packed`` as :class:`featx.data.packed.PackedStrings`."""
        return cls(**{f.name: read_packed(group[f.name]) if f.name in packed
                      else _read_column(group[f.name], f.name in cls.CATEGORICAL) for f in fields(cls)})

    CATEGORICAL: ClassVar[tuple[str, ...]] = ()  # text columns of a few distinct values (one str object each)

    @classmethod
    def concat(cls, tables: list[Table]) -> Table:
        """The rows of ``tables``, one after the other."""
        if not tables:
            return cls.empty()
        return cls(**{f.name: np.concatenate([getattr(t, f.name) for t in tables]) for f in fields(cls)})

    @classmethod
    def empty(cls) -> Table:
        return cls(**{f.name: np.asarray([], dtype=_EMPTY_DTYPES.get(f.name, object)) for f in fields(cls)})


_EMPTY_DTYPES = {"id": ID_DTYPE, "label": np.int32, "size": np.int64, "mtime_ns": np.int64, "rows": np.int64,
                 "part": np.int64, "start": np.int64, "length": np.int64}


@dataclass
class ImageTable(Table):
    """One row per image file of the dataset at the last embed."""

    CATEGORICAL: ClassVar[tuple[str, ...]] = ("split",)

    path: np.ndarray  # object (str), relative to the dataset root (PackedStrings when read with packed_paths)
    id: np.ndarray  # S64
    label: np.ndarray  # int32, -1 unlabelled
    split: np.ndarray  # object (str) (a run's: CodedStrings, one byte each)
    size: np.ndarray  # int64
    mtime_ns: np.ndarray  # int64


@dataclass
class SkipTable(Table):
    """Files that could not be embedded, with the reason; id is b"" when the file was unreadable."""

    path: np.ndarray
    id: np.ndarray
    reason: np.ndarray


@dataclass
class SegmentTable(Table):
    """One row per segment file of a committed cache, in the order of ``/vectors/id``.

    ``size`` and ``mtime_ns`` are the file's when it was committed (a rerun trusts a segment whose
    stat still matches), ``digest`` the sha256 of its ids and vector bytes, and ``attrs`` the JSON of
    the segment file's own attributes (what wrote it; open to more keys).
    """

    name: np.ndarray  # object (str), file name in the cache's segment folder
    rows: np.ndarray  # int64
    size: np.ndarray  # int64
    mtime_ns: np.ndarray  # int64
    digest: np.ndarray  # object (str)
    attrs: np.ndarray  # object (str), JSON


@dataclass
class PartTable(Table):
    """One row per part file of a cache's image table (schema v3, ``featx.cache.parts``): its rows,
    its stat when committed and the sha256 of its bytes."""

    name: np.ndarray  # object (str), file name in the cache's segment folder
    rows: np.ndarray  # int64
    size: np.ndarray  # int64
    mtime_ns: np.ndarray  # int64
    digest: np.ndarray  # object (str)


@dataclass
class RunTable(Table):
    """The image table in order, as ranges of part rows: rows ``start:start+length`` of part ``part``."""

    part: np.ndarray  # int64, a row of the PartTable
    start: np.ndarray  # int64
    length: np.ndarray  # int64
