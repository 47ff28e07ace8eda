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



def os_reason(exc: OSError) -> str:
    """A short reason, for a skip list, why a file could not be read."""
    if isinstance(exc, FileNotFoundError):
        return "file not found"
    if isinstance(exc, PermissionError):
        return "permission denied"
    if isinstance(exc, IsADirectoryError):
        return "is a folder, not a file"
    return f"cannot read file ({exc.strerror or exc})"


def _unreadable(exc: OSError, path: str) -> str:
    if isinstance(exc, FileNotFoundError) and os.path.islink(path):
        return "broken symbolic link"
    return os_reason(exc)


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
    if previous is not None:  # tolist(): Python values at C speed, not one numpy scalar at a time
        known = dict(zip(previous.path.tolist(),
                         zip(previous.size.tolist(), previous.mtime_ns.tolist(), previous.id.tolist())))
    prefix = str(root).rstrip(os.sep) + os.sep

    def look(record: ImageRecord) -> tuple[int, int, bytes] | tuple[int, int, str] | str:
        """The known id of an unchanged file, else (size, mtime, full path) to hash, else a reason."""
        path = record.path if os.path.isabs(record.path) else prefix + record.path
        try:
            stat = os.stat(path)
        except OSError as exc:
            return _unreadable(exc, path)
        if not S_ISREG(stat.st_mode):
            return "not a regular file"
        seen = known.get(record.path)
        if seen is not None and seen[0] == stat.st_size and seen[1] == stat.st_mtime_ns:
            return seen
        return stat.st_size, stat.st_mtime_ns, path

    def digest(found: tuple[int, int, str]) -> tuple[int, int, bytes] | str:
        size, mtime_ns, path = found
        try:
            return size, mtime_ns, sha256_file(Path(path)).encode()
        except OSError as exc:
            return _unreadable(exc, path)

    # A stat per file in this thread (threads only add overhead there), then the files that are new
    # or changed are hashed in ``workers`` threads (hashlib releases the GIL).
    results = [look(record) for record in records]
    to_hash = [row for row, res in enumerate(results) if not isinstance(res, str) and isinstance(res[2], str)]
    if to_hash:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            for row, res in zip(to_hash, pool.map(digest, [results[row] for row in to_hash])):
                results[row] = res

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
