"""A run's scan joined to the committed image table, a block of committed rows at a time (the committed
table is never whole in memory): which files keep their content ids unread, and which rows changed.

Both tables are in the scan's order (split, then path) when a run wrote the committed one: they are
merged in order, with no index of either. Otherwise (a table featx did not sort) the scan's paths
are joined by sorted 64-bit hashes (12 bytes an image while it runs)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from featx.cache.store import CacheIndex
from featx.cache.tables import ImageTable, sorted_hashes
from featx.data.records import SPLIT_ORDER, RecordColumns

_BLOCK = 65536  # scan rows made into keys at a time, and committed rows per join step


@dataclass
class Matched:
    """How a scan's image table lines up with the committed one, found a block of committed rows at a
    time (the committed table is never whole in memory): what a run needs to know whether its table
    changed and which rows a commit writes again. About 5 bytes an image."""

    rows: np.ndarray  # int32 (int64 past 2**31 rows): the committed row with each image's path, -1 where none
    equal: np.ndarray  # bool: that row equals this image's in every column (the mtime as stat gives it)
    unset: np.ndarray  # rows whose committed mtime is unset (-1: not embedded) and otherwise equal
    committed: int  # rows of the committed table

    def take(self, keep) -> Matched:
        return Matched(self.rows[keep], self.equal[keep], np.flatnonzero(self._unset()[keep]), self.committed)

    def _unset(self) -> np.ndarray:
        flags = np.zeros(len(self.rows), bool)
        flags[self.unset] = True
        return flags

    def unchanged_rows(self, images: ImageTable) -> np.ndarray:
        """For each row of ``images``: the committed row equal to it in every column, else -1 (a run
        unsets the mtime of an image it could not embed: equal then only if it was unset before)."""
        return np.where(np.where(images.mtime_ns == -1, self._unset(), self.equal), self.rows, -1)

    def same_table(self, images: ImageTable) -> bool:
        """Whether ``images`` is the committed table, row for row (a block at a time: no temporaries
        as long as the table)."""
        if self.committed != len(images):
            return False
        for start in range(0, len(images), _BLOCK):
            block = slice(start, start + _BLOCK)
            if not np.array_equal(self.take(block).unchanged_rows(images.take(block)),
                                  np.arange(start, start + len(self.rows[block]))):
                return False
        return True


def match_committed(columns: RecordColumns, size: np.ndarray, mtime_ns: np.ndarray, ids: np.ndarray,
                    seen: np.ndarray, previous: ImageTable | CacheIndex | None) -> tuple[Matched, dict[int, bytes]]:
    """Join the scan (``columns``, with the ``size`` and ``mtime_ns`` stat gave) to the ``previous``
    table on paths, each match checked against the path itself: fills ``ids`` and ``seen`` where size
    and time are unchanged; returns the match and, of the rows whose committed mtime is unset, the
    committed ids (the same row if the same bytes, once hashed)."""
    n = len(columns)
    if previous is None or n == 0:
        return Matched(np.full(n, -1, np.int32), np.zeros(n, bool), np.zeros(0, np.int64), 0), {}
    for join in (_InOrder(columns), _ByHashes(columns)):
        matched = Matched(np.full(n, -1, np.int32), np.zeros(n, bool), np.zeros(0, np.int64), 0)
        rehashed: dict[int, bytes] = {}
        ids[:], seen[:] = b"", False
        blocks = previous.image_blocks() if isinstance(previous, CacheIndex) else [(0, previous)]
        try:
            for offset, block in blocks:
                matched.committed = offset + len(block)
                if matched.committed >= 2**31 and matched.rows.dtype != np.int64:
                    matched.rows = matched.rows.astype(np.int64)
                for start in range(0, len(block), _BLOCK):
                    part = block.take(slice(start, start + _BLOCK))
                    for within, rows in join(part):
                        _record(matched, rehashed, offset + start, part, within, rows, columns, size, mtime_ns, ids, seen)
            return matched, rehashed
        except _OutOfOrder:
            continue
    raise AssertionError("the hash join takes any order")


class _OutOfOrder(Exception):
    """The committed table is not in the scan's order: joined by hashes instead."""


def _record(matched: Matched, rehashed: dict[int, bytes], first: int, part: ImageTable, within: np.ndarray,
            rows: np.ndarray, columns: RecordColumns, size: np.ndarray, mtime_ns: np.ndarray, ids: np.ndarray,
            seen: np.ndarray) -> None:
    """Committed rows ``first + within`` (of ``part``) are the scan's ``rows``."""
    before = part.take(within)
    matched.rows[rows] = first + within
    unchanged = (before.size == size[rows]) & (before.mtime_ns == mtime_ns[rows]) & (mtime_ns[rows] >= 0)
    ids[rows[unchanged]] = before.id[unchanged]
    seen[rows[unchanged]] = True
    alike = ((before.label == columns.labels[rows]) & (before.size == size[rows])
             & (_split_codes(before.split) == columns.splits[rows]))
    matched.equal[rows] = alike & unchanged
    was_unset = alike & (before.mtime_ns == -1)
    rehashed.update(zip(rows[was_unset].tolist(), before.id[was_unset].tolist()))


class _InOrder:
    """Merge: the committed rows of each part (in the scan's order) found among the scan's rows between
    the first and the last of their keys, a block of scan rows at a time; no index of either table."""

    def __init__(self, columns: RecordColumns):
        self.columns = columns

    def __call__(self, part: ImageTable) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        columns = self.columns
        keys = _keys(_split_codes(part.split), np.asarray(part.path, dtype=object))
        if len(keys) == 0:
            return
        if not bool(np.all(keys[1:] > keys[:-1])):
            raise _OutOfOrder
        low, high = _bisect(columns, keys[0]), min(_bisect(columns, keys[-1]) + 1, len(columns))
        if high - low > 8 * len(keys) + _BLOCK:  # scattered far apart: not the scan's order
            raise _OutOfOrder
        for start in range(low, high, _BLOCK):
            stop = min(start + _BLOCK, high)
            scan = _keys(columns.splits[start:stop], np.asarray(columns.paths[start:stop]))
            place = np.minimum(np.searchsorted(scan, keys), len(scan) - 1)
            within = np.flatnonzero(scan[place] == keys)
            yield within, start + place[within]


class _ByHashes:
    """The committed rows of each part found by the sorted hashes of the scan's paths (made on first use:
    12 bytes an image while the join runs), each match checked against the path itself."""

    def __init__(self, columns: RecordColumns):
        self.columns, self.index = columns, None

    def __call__(self, part: ImageTable) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        paths = self.columns.paths
        if self.index is None:
            self.index = sorted_hashes(np.concatenate([_hashes(paths[start : start + _BLOCK])
                                                       for start in range(0, len(paths), _BLOCK)]))
        order, ordered = self.index
        sought = _hashes(part.path)
        place = np.minimum(np.searchsorted(ordered, sought), len(ordered) - 1)
        within = np.flatnonzero(ordered[place] == sought)
        rows = order[place[within]]
        same_path = paths[rows] == np.asarray(part.path, dtype=object)[within]
        yield within[same_path], rows[same_path]


def _keys(codes: np.ndarray, paths: np.ndarray) -> np.ndarray:
    """Sort keys as ``str``: the split's code as one letter, then the path (the scan's order)."""
    return np.asarray([chr(65 + code) + path for code, path in zip(codes.tolist(), paths.tolist())], dtype=object)


def _bisect(columns: RecordColumns, key: str) -> int:
    """The first scan row whose key is not below ``key`` (a binary search: a few rows decoded)."""
    low, high = 0, len(columns)
    while low < high:
        mid = (low + high) // 2
        if chr(65 + int(columns.splits[mid])) + columns.paths[mid] < key:
            low = mid + 1
        else:
            high = mid
    return low


def _hashes(paths) -> np.ndarray:
    """Python's hash of each path (a block of them: decoded one block at a time)."""
    return np.fromiter(map(hash, paths.tolist() if hasattr(paths, "tolist") else paths), np.int64, len(paths))


def _split_codes(splits: np.ndarray) -> np.ndarray:
    return np.fromiter((SPLIT_ORDER.get(s, 255) for s in splits.tolist()), np.uint8, len(splits))
