"""Content ids for image files: sha256 of the bytes, skipped when size and mtime are unchanged."""

from __future__ import annotations

import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from stat import S_ISREG
from typing import Protocol

import numpy as np

from featx.cache.tables import ID_DTYPE, ImageTable, id_column, str_column
from featx.config import sha256_file
from featx.data.records import ImageRecord
from featx.errors import os_reason


def _unreadable(exc: OSError, path: str) -> str:
    if isinstance(exc, FileNotFoundError) and os.path.islink(path):
        return "broken symbolic link"
    return os_reason(exc)


def index_files(
    root: Path,
    records: Sequence[ImageRecord],
    previous: ImageTable | None,
    workers: int,
    files: Files | None = None,
) -> tuple[ImageTable, list[tuple[str, str]]]:
    """An :class:`ImageTable` for ``records`` and the (path, reason) of files that cannot be read.

    A file whose size and modification time match the previous table keeps its id without being
    read again, which is what makes a rerun on an unchanged folder fast. ``files`` stats and hashes
    them: local files by default (:class:`LocalFiles`); :class:`featx.data.objectstore.ObjectFiles` for
    a dataset named by URL.
    """
    files = files or LocalFiles(root, workers)
    known: dict[str, tuple[int, int, bytes]] = {}
    if previous is not None:  # tolist(): Python values at C speed, not one numpy scalar at a time
        known = dict(zip(previous.path.tolist(),
                         zip(previous.size.tolist(), previous.mtime_ns.tolist(), previous.id.tolist())))
    paths = [record.path for record in records]
    results: list[tuple[int, int, bytes] | tuple[int, int] | str] = []
    to_hash: list[int] = []
    for row, (path, stat) in enumerate(zip(paths, files.stat(paths))):
        seen = known.get(path) if not isinstance(stat, str) else None
        if seen is not None and seen[0] == stat[0] and seen[1] == stat[1] and stat[1] >= 0:
            results.append(seen)
            continue
        results.append(stat)
        if not isinstance(stat, str):  # new or changed: hashed below
            to_hash.append(row)
    for row, digest in zip(to_hash, files.sha256([paths[row] for row in to_hash])):
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
    """Files under a local ``root`` (or absolute): a stat each in this thread (threads only add overhead
    there), then the new or changed ones hashed in ``workers`` threads (hashlib releases the GIL)."""

    def __init__(self, root: Path, workers: int):
        self.prefix = str(root).rstrip(os.sep) + os.sep
        self.workers = workers

    def _path(self, name: str) -> str:
        return name if os.path.isabs(name) else self.prefix + name

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
