"""The vectors' content ids: read from the segments (schema v3: the index does not repeat them), or
only their 64-bit hashes (a lean index), and joined to the image table's ids."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from featx._gc import release_free_memory
from featx.cache.schema import read
from featx.cache.segments import segment_dir
from featx.cache.tables import ID_DTYPE, SegmentTable, has_repeats, id_hashes, rows_of, sorted_hashes
from featx.errors import CacheError

_ID_BLOCK = 65536  # ids read at a time while hashing or checking a lean join (4 MB)


def segment_ids(path: Path, segments: SegmentTable, hashed: bool = False) -> tuple[np.ndarray, dict[int, str]]:
    """The content ids of every segment, in order, read from the segments themselves (schema v3:
    the index does not repeat them), or only their :func:`id_hashes` (8 bytes each, not 64); a segment
    that cannot be read gives blank ids, and why."""
    ids, unreadable = [np.zeros(0, np.uint64 if hashed else ID_DTYPE)], {}
    for i, (name, rows) in enumerate(zip(segments.name, segments.rows)):
        file, found = segment_dir(path) / name, np.zeros(0, ID_DTYPE)
        try:
            with h5py.File(file, "r") as h5:
                found = read_ids(h5["id"], hashed)
            if len(found) != rows:
                unreadable[i] = (f"the segments hold {rows} rows by the index, but {file} holds {len(found)}; "
                                 "re-run 'featx embed' to repair the cache.")
        except CacheError as exc:  # a checksum
            unreadable[i] = str(exc)
        except (OSError, KeyError):
            unreadable[i] = f"{file} is missing or not readable; re-run 'featx embed' to repair the cache."
        if i in unreadable:
            found = np.zeros(int(rows), ID_DTYPE)
            found = id_hashes(found) if hashed else found
        ids.append(found)
    ids = np.concatenate(ids)
    release_free_memory()  # the blocks of ids read and hashed
    return ids, unreadable


def read_ids(dataset: h5py.Dataset, hashed: bool) -> np.ndarray:
    """A segment's ids (S64), or their hashes read a block at a time (no column of ids in memory)."""
    if not hashed:
        return read(dataset).astype(ID_DTYPE, copy=False)
    return np.concatenate([np.zeros(0, np.uint64)] + [
        id_hashes(read(dataset, np.s_[start : start + _ID_BLOCK]).astype(ID_DTYPE, copy=False))
        for start in range(0, len(dataset), _ID_BLOCK)])


def repeated_ids(ids: np.ndarray | None, hashes: np.ndarray | None, all_ids: Callable[[], np.ndarray],
                 blanks: bool = False) -> bool:
    """Whether a content id appears twice among the vectors: their ``ids`` (``blanks``: rows of
    unreadable segments, left out), or in a lean index their ``hashes``, where only a shared hash needs
    ``all_ids()``."""
    if ids is None:
        hashed = np.sort(hashes)
        if not bool((hashed[1:] == hashed[:-1]).any()):
            return False
        ids = all_ids()
    return has_repeats(ids[ids != b""] if blanks else ids)


class HashedIds:
    """The vectors' ids of a lean index known by their 64-bit hashes, sorted (12 bytes an id, not 64):
    which row holds each of many ids, found by hash, each match then checked against the id the
    segment holds (``sources``, a block at a time); where two vectors share a hash, joined on
    ``all_ids()``. ``usable`` (a mask of rows, or None for all) limits the rows that count as held."""

    def __init__(self, order: np.ndarray, ordered: np.ndarray, sources: list, all_ids: Callable[[], np.ndarray],
                 usable: np.ndarray | None = None, shared: bool | None = None):
        self.order, self.ordered = order, ordered  # rows by hash, and their hashes in that order
        self.sources, self.all_ids, self.usable = sources, all_ids, usable
        if shared is None:  # two ids share a hash: joined on the ids themselves
            shared = len(ordered) > 1 and bool((ordered[1:] == ordered[:-1]).any())
        self.shared = shared

    @classmethod
    def of(cls, hashes: np.ndarray, sources: list, all_ids: Callable[[], np.ndarray]) -> HashedIds:
        """From the hashes in row order (:func:`id_hashes`), which it consumes."""
        return cls(*sorted_hashes(hashes), sources, all_ids)

    def limited(self, usable: np.ndarray | None) -> HashedIds:
        """The same ids, only the rows of ``usable`` counting as held (None: all)."""
        return HashedIds(self.order, self.ordered, self.sources, self.all_ids, usable, self.shared)

    @property
    def hashes(self) -> np.ndarray:
        """The hashes in row order (made on each call)."""
        out = np.empty_like(self.ordered)
        out[self.order] = self.ordered
        return out

    def __len__(self) -> int:
        return len(self.ordered) if self.usable is None else int(self.usable.sum())

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The row of each of ``ids`` (S64) among the vectors, -1 where none (or not usable): int32 where
        the rows fit (4 bytes an id asked; the work is done a block of ids at a time)."""
        ids = np.asarray(ids, ID_DTYPE)
        order, ordered = self.order, self.ordered
        if len(ordered) == 0 or len(ids) == 0:
            return np.full(len(ids), -1, np.int64)
        if self.shared:
            rows = rows_of(self.all_ids(), ids)
        else:
            rows = np.empty(len(ids), np.int32 if len(ordered) < 2**31 - 1 else np.int64)
            for start in range(0, len(ids), _ID_BLOCK):
                sought = id_hashes(ids[start : start + _ID_BLOCK])
                place = np.minimum(np.searchsorted(ordered, sought), len(ordered) - 1)
                rows[start : start + len(sought)] = np.where(ordered[place] == sought, order[place], -1)
            self._check(rows, ids)
        if self.usable is not None:
            for start in range(0, len(rows), _ID_BLOCK):
                block = rows[start : start + _ID_BLOCK]
                block[~self.usable[np.maximum(block, 0)]] = -1
        return rows

    def contains(self, ids: np.ndarray) -> np.ndarray:
        return self.rows(ids) >= 0

    def _check(self, rows: np.ndarray, ids: np.ndarray) -> None:
        """Unset each row whose segment holds another id than the one its hash found (each segment
        block read once, the rows compared a block at a time)."""
        for source in self.sources:
            with h5py.File(source.file, "r") as h5:
                stored = h5[source.ids_dataset]
                for start in range(source.start, source.stop, _ID_BLOCK):
                    stop, block = min(start + _ID_BLOCK, source.stop), None
                    for first in range(0, len(rows), _ID_BLOCK):
                        chunk = rows[first : first + _ID_BLOCK]
                        mine = np.flatnonzero((chunk >= start) & (chunk < stop))
                        if not len(mine):
                            continue
                        if block is None:
                            block = read(stored, np.s_[start - source.start : stop - source.start]).astype(ID_DTYPE)
                        chunk[mine[block[chunk[mine] - start] != ids[first + mine]]] = -1


