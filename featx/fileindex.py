"""Content ids for image files: sha256 of the bytes, skipped when size and mtime are unchanged."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
import os
from pathlib import Path
from stat import S_ISREG
from typing import Protocol

import numpy as np

from featx.cache.tables import ID_DTYPE, ImageTable, id_column, str_column
from featx.config import sha256_file
from featx.datasets import ImageRecord

CHUNK = 256  # files per thread task


def os_reason(exc: OSError) -> str:
    """A short reason, for a skip list, why a file could not be read."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not a file"
    return f"cannot read file ({exc.strerror or exc})"


def index_files(
    root: Path,
    records: Sequence[ImageRecord],
    previous: ImageTable | None,
    workers: int,
    files: "Files | None" = None,
) -> tuple[ImageTable, list[tuple[str, str]]]:
    """An :class:`ImageTable` for ``records`` and the (path, reason) of files that cannot be read.

    A file whose size and modification time match the previous table keeps its id without being
    read again, which is what makes a rerun on an unchanged folder fast. ``files`` stats and hashes
    them: local files by default; :class:`featx.objectstore.ObjectFiles` for a URL dataset.
    """
    files = files or LocalFiles(root, workers)
    known: dict[str, tuple[int, int, bytes]] = {}
    if previous is not None:
        known = {
            p: (int(s), int(m), i)
            for p, s, m, i in zip(previous.path, previous.size, previous.mtime_ns, previous.id)
        }
    paths = [record.path for record in records]
    results: list[tuple[int, int, bytes] | str] = []
    unknown: list[int] = []
    for row, (path, stat) in enumerate(zip(paths, files.stat(paths))):
        seen = known.get(path)
        if isinstance(stat, str) or (seen is not None and seen[:2] == stat and stat[1] >= 0):
            results.append(stat if isinstance(stat, str) else seen)
        else:
            results.append(stat)
            unknown.append(row)
    for row, digest in zip(unknown, files.sha256([paths[row] for row in unknown])):
        size, mtime_ns = results[row]
        results[row] = digest if isinstance(digest, str) else (size, mtime_ns, digest)

    ok = [(r, res) for r, res in zip(records, results) if not isinstance(res, str)]
    failed = [(r.path, res) for r, res in zip(records, results) if isinstance(res, str)]
    table = ImageTable(
        path=str_column(r.path for r, _ in ok),
        id=id_column(res[2] for _, res in ok),
        label=np.asarray([r.label for r, _ in ok], dtype=np.int32),
        split=str_column(r.split for r, _ in ok),
        size=np.asarray([res[0] for _, res in ok], dtype=np.int64),
        mtime_ns=np.asarray([res[1] for _, res in ok], dtype=np.int64),
    )
    if not ok:
        table = ImageTable.empty()
    table.id = table.id.astype(ID_DTYPE)
    return table, failed


class Files(Protocol):
    """Where :func:`index_files` gets each file's (size, mtime_ns) and sha256 (hex, as bytes), or why not."""

    def stat(self, paths: Sequence[str]) -> list[tuple[int, int] | str]: ...

    def sha256(self, paths: Sequence[str]) -> list[bytes | str]: ...


class LocalFiles:
    """Files under a local ``root``, stated and hashed by ``workers`` threads, a chunk per task."""

    def __init__(self, root: Path, workers: int):
        self.root, self.workers = root, workers

    def stat(self, paths: Sequence[str]) -> list[tuple[int, int] | str]:
        def one(name: str) -> tuple[int, int] | str:
            path = os.path.join(self.root, name)
            try:
                stat = os.stat(path)
            except OSError as exc:
                if isinstance(exc, FileNotFoundError) and os.path.islink(path):
                    return "broken symbolic link"
                return os_reason(exc)
            return (stat.st_size, stat.st_mtime_ns) if S_ISREG(stat.st_mode) else "not a regular file"

        return self._map(one, paths)

    def sha256(self, paths: Sequence[str]) -> list[bytes | str]:
        def one(name: str) -> bytes | str:
            try:
                return sha256_file(Path(os.path.join(self.root, name))).encode()
            except OSError as exc:
                return os_reason(exc)

        return self._map(one, paths)

    def _map(self, one, paths: Sequence[str]) -> list:
        def some(start: int) -> list:  # one task per chunk: few futures
            return [one(path) for path in paths[start : start + CHUNK]]

        with ThreadPoolExecutor(max_workers=max(1, self.workers)) as pool:
            return [result for chunk in pool.map(some, range(0, len(paths), CHUNK)) for result in chunk]
