"""Content ids for image files: sha256 of the bytes, skipped when size and mtime are unchanged."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from stat import S_ISREG
from typing import Protocol

import numpy as np

from featx._gc import gc_paused, release_free_memory
from featx.cache.store import CacheIndex
from featx.cache.tables import ID_DTYPE, ImageTable
from featx.config import sha256_file
from featx.data.records import ImageRecord, RecordColumns
from featx.engine.tablematch import Matched, match_committed
from featx.errors import os_reason


def _unreadable(exc: OSError, path: str) -> str:
    if isinstance(exc, FileNotFoundError) and os.path.islink(path):
        return "broken symbolic link"
    return os_reason(exc)


_STAT_BLOCK = 65536
_HASH_BLOCK = 1024  # files handed to the hashing threads at a time
_is_absolute = (lambda name: name.startswith("/")) if os.name == "posix" else os.path.isabs  # called per file


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
    matched, rehashed = match_committed(columns, size, mtime_ns, ids, seen, previous)
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
        found: list[bytes | str] = []
        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            for start in range(0, len(paths), _HASH_BLOCK):  # a block of futures at a time (~2 KB each)
                found += pool.map(digest, paths[start : start + _HASH_BLOCK])
        return found
