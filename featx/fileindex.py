"""Content ids for image files: sha256 of the bytes, skipped when size and mtime are unchanged."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
import os
from pathlib import Path
from stat import S_ISREG

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
) -> tuple[ImageTable, list[tuple[str, str]]]:
    """An :class:`ImageTable` for ``records`` and the (path, reason) of files that cannot be read.

    A file whose size and modification time match the previous table keeps its id without being
    read again, which is what makes a rerun on an unchanged folder fast.
    """
    known: dict[str, tuple[int, int, bytes]] = {}
    if previous is not None:
        known = {
            p: (int(s), int(m), i)
            for p, s, m, i in zip(previous.path, previous.size, previous.mtime_ns, previous.id)
        }

    def one(record: ImageRecord) -> tuple[int, int, bytes] | str:
        path = os.path.join(root, record.path)
        try:
            stat = os.stat(path)
            if not S_ISREG(stat.st_mode):
                return "not a regular file"
            seen = known.get(record.path)
            if seen is not None and seen[0] == stat.st_size and seen[1] == stat.st_mtime_ns:
                return seen
            return stat.st_size, stat.st_mtime_ns, sha256_file(Path(path)).encode()
        except OSError as exc:
            if isinstance(exc, FileNotFoundError) and os.path.islink(path):
                return "broken symbolic link"
            return os_reason(exc)

    def some(start: int) -> list[tuple[int, int, bytes] | str]:  # one task per chunk: few futures
        return [one(record) for record in records[start : start + CHUNK]]

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        results = [result for chunk in pool.map(some, range(0, len(records), CHUNK)) for result in chunk]

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
