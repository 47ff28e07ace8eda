"""Content ids for image files: sha256 of the bytes, skipped when size and mtime are unchanged."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from stat import S_ISREG
from typing import Protocol

import numpy as np

from featx._gc import gc_paused, release_free_memory
from featx.cache.store import CacheIndex
from featx.cache.tables import ID_DTYPE, ImageTable, sorted_hashes
from featx.config import sha256_file
from featx.data.records import SPLIT_ORDER, ImageRecord, RecordColumns
from featx.errors import os_reason


def _unreadable(exc: OSError, path: str) -> str:
    if isinstance(exc, FileNotFoundError) and os.path.islink(path):
        return "broken symbolic link"
    return os_reason(exc)


_STAT_BLOCK = 65536
_is_absolute = (lambda name: name.startswith("/")) if os.name == "posix" else os.path.isabs  # called per file


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
        for start in range(0, len(images), _STAT_BLOCK):
            block = slice(start, start + _STAT_BLOCK)
            if not np.array_equal(self.take(block).unchanged_rows(images.take(block)),
                                  np.arange(start, start + len(self.rows[block]))):
                return False
        return True


@gc_paused()
def index_files(
    root: Path,
    records: Sequence[ImageRecord],
    previous: ImageTable | CacheIndex | None,
    workers: int,
    files: Files | None = None,
) -> tuple[ImageTable, list[tuple[str, str]], Matched]:
    """An :class:`ImageTable` for ``records``, the (path, reason) of files that cannot be read, and how
    the table matches the ``previous`` one (:class:`Matched`).

    A file whose size and modification time match the previous table keeps its id without being
    read again, which is what makes a rerun on an unchanged folder fast. The table's paths are the
    scan's packed column (:class:`featx.data.packed.PackedStrings`); a committed index's table is read
    a block at a time. ``files`` stats and hashes them: local files by default (:class:`LocalFiles`);
    :class:`featx.data.objectstore.ObjectFiles` for a dataset named by URL.
    """
    files = files or LocalFiles(root, workers)
    columns = RecordColumns.of(records)
    paths = columns.paths
    size, mtime_ns = np.full(len(paths), -1, np.int64), np.full(len(paths), -1, np.int64)
    reasons: dict[int, str] = {}
    for start in range(0, len(paths), _STAT_BLOCK):  # a block of (size, mtime) tuples at a time in memory
        block = files.stat(paths[start : start + _STAT_BLOCK].tolist())
        failed = [row for row, stat in enumerate(block) if isinstance(stat, str)]
        for row in failed:
            reasons[start + row], block[row] = block[row], (-1, -1)
        stats = np.array(block, np.int64).reshape(len(block), 2)
        size[start : start + len(block)], mtime_ns[start : start + len(block)] = stats[:, 0], stats[:, 1]
    ids = np.zeros(len(paths), ID_DTYPE)
    seen = np.zeros(len(paths), bool)  # unchanged size and time: the id without reading the file
    matched, rehashed = _match(columns, size, mtime_ns, ids, seen, previous)
    readable = np.ones(len(paths), bool)
    readable[list(reasons)] = False
    to_hash = np.flatnonzero(readable & ~seen)  # new or changed: hashed
    for row, digest in zip(to_hash.tolist(), files.sha256(paths[to_hash].tolist())):
        if isinstance(digest, str):
            reasons[row], readable[row] = digest, False
        else:
            ids[row] = digest
    matched.unset = np.asarray(sorted(row for row, committed_id in rehashed.items() if ids[row] == committed_id),
                               np.int64)  # unset before: the same row if the same bytes, and unset again
    release_free_memory()  # the join's blocks of strings and temporaries
    unreadable = [(paths[row], reasons[row]) for row in sorted(reasons)]
    if not readable.any():
        return ImageTable.empty(), unreadable, matched.take(readable)
    keep = slice(None) if readable.all() else readable  # no copy of a column when every file reads
    table = ImageTable(path=paths[keep], id=ids[keep], label=columns.labels[keep], split=columns.split_names()[keep],
                       size=size[keep], mtime_ns=mtime_ns[keep])
    return table, unreadable, matched.take(keep)


def _match(columns: RecordColumns, size: np.ndarray, mtime_ns: np.ndarray, ids: np.ndarray, seen: np.ndarray,
           previous: ImageTable | CacheIndex | None) -> tuple[Matched, dict[int, bytes]]:
    """Join the scan to the ``previous`` table on paths (sorted 64-bit hashes of the scan's, each match
    checked against the path itself), a block of previous rows at a time: fills ``ids`` and ``seen``
    where size and time are unchanged; returns the match and, of the rows whose committed mtime is
    unset, the committed ids (the same row if the same bytes, once hashed)."""
    n = len(columns)
    matched = Matched(np.full(n, -1, np.int32), np.zeros(n, bool), np.zeros(0, np.int64), 0)
    rehashed: dict[int, bytes] = {}
    if previous is None or n == 0:
        return matched, rehashed
    order, ordered = sorted_hashes(np.concatenate([_hashes(columns.paths[start : start + _STAT_BLOCK])
                                                   for start in range(0, n, _STAT_BLOCK)]))
    blocks = previous.image_blocks() if isinstance(previous, CacheIndex) else [(0, previous)]
    for offset, block in blocks:
        matched.committed = offset + len(block)
        if matched.committed >= 2**31 and matched.rows.dtype != np.int64:
            matched.rows = matched.rows.astype(np.int64)
        for start in range(0, len(block), _STAT_BLOCK):
            part = block.take(slice(start, start + _STAT_BLOCK))
            sought = _hashes(part.path)
            place = np.minimum(np.searchsorted(ordered, sought), n - 1)
            within = np.flatnonzero(ordered[place] == sought)
            rows = order[place[within]]
            same_path = columns.paths[rows] == np.asarray(part.path, dtype=object)[within]
            within, rows = within[same_path], rows[same_path]
            before = part.take(within)
            matched.rows[rows] = offset + start + within
            unchanged = (before.size == size[rows]) & (before.mtime_ns == mtime_ns[rows]) & (mtime_ns[rows] >= 0)
            ids[rows[unchanged]] = before.id[unchanged]
            seen[rows[unchanged]] = True
            alike = ((before.label == columns.labels[rows]) & (before.size == size[rows])
                     & (_split_codes(before.split) == columns.splits[rows]))
            matched.equal[rows] = alike & unchanged
            was_unset = alike & (before.mtime_ns == -1)
            rehashed.update(zip(rows[was_unset].tolist(), before.id[was_unset].tolist()))
    return matched, rehashed


def _hashes(paths) -> np.ndarray:
    """Python's hash of each path (a block of them: decoded one block at a time)."""
    return np.fromiter(map(hash, paths.tolist() if hasattr(paths, "tolist") else paths), np.int64, len(paths))


def _split_codes(splits: np.ndarray) -> np.ndarray:
    return np.fromiter((SPLIT_ORDER.get(s, 255) for s in splits.tolist()), np.uint8, len(splits))


class Files(Protocol):
    """Where :func:`index_files` gets each file's (size, mtime_ns) and sha256 (hex, as bytes), or why not."""

    def stat(self, paths: Sequence[str]) -> list[tuple[int, int] | str]: ...

    def sha256(self, paths: Sequence[str]) -> list[bytes | str]: ...


class LocalFiles:
    """Files under a local ``root`` (or absolute): a stat each in this thread (threads only add overhead
    there), then the new or changed ones hashed in ``workers`` threads (hashlib releases the GIL)."""

    def __init__(self, root: Path, workers: int):
        self.prefix = str(root).rstrip(os.sep) + os.sep
        self.workers = workers

    def _path(self, name: str) -> str:
        return name if _is_absolute(name) else self.prefix + name

    def stat(self, paths: Sequence[str]) -> list[tuple[int, int] | str]:
        found: list[tuple[int, int] | str] = []
        for name in paths:
            path = self._path(name)
            try:
                stat = os.stat(path)
            except OSError as exc:
                found.append(_unreadable(exc, path))
                continue
            found.append((stat.st_size, stat.st_mtime_ns) if S_ISREG(stat.st_mode) else "not a regular file")
        return found

    def sha256(self, paths: Sequence[str]) -> list[bytes | str]:
        def digest(name: str) -> bytes | str:
            path = self._path(name)
            try:
                return sha256_file(Path(path)).encode()
            except OSError as exc:
                return _unreadable(exc, path)

        if not paths:
            return []
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            return list(pool.map(digest, paths))
