"""The image table of a cache as immutable parts, so that a commit writes only the rows it adds.

Since schema v3 the index's ``/images`` columns are HDF5 virtual datasets over *part* files in the
segment folder (``images-<uuid>.h5``), as ``/vectors/features`` is over the segments. The index
lists the parts (``/parts``) and the table in order as *runs* of part rows (``/runs``). A commit
whose table differs from the committed one writes the rows that are new or changed as one new
part and an index of a few runs: adding 1 % of images writes 1 % of the rows, never the old ones
again. A table that would need more than :data:`MAX_PARTS` parts or :data:`MAX_RUNS` runs, and
every ``cache compact``, is written as one part again (folded).
"""

from __future__ import annotations

import hashlib
import io
import uuid
from dataclasses import dataclass, field, fields
from pathlib import Path

import h5py
import numpy as np

from featx.cache.atomic import atomic_file
from featx.cache.schema import stamp
from featx.cache.segments import PART_PREFIX, SEGMENT_TYPE, segment_dir, write_virtual
from featx.cache.tables import ID_DTYPE, STR, ImageTable, PartTable, RunTable, id_hashes, rows_of, str_column

MAX_PARTS = 16  # then the next commit folds the table into one part
MAX_RUNS = 4096  # scattered changes: a table of more runs is folded too


@dataclass
class TableLayout:
    """Where the rows of an image table live: the parts, the runs in table order; the part files a
    commit wrote (removed if it fails) and those it stops listing (removed after it)."""

    parts: PartTable
    runs: RunTable
    written: list[Path] = field(default_factory=list)
    dropped: list[Path] = field(default_factory=list)


def layout_table(cache_path: Path, images: ImageTable, committed: TableLayout | None = None,
                 unchanged: np.ndarray | None = None, *, fold: bool = False) -> TableLayout:
    """Write what ``images`` needs beyond the ``committed`` layout of the table (one new part of its
    new or changed rows, or nothing) and return its layout; ``unchanged`` gives, for each row of
    ``images``, the committed row equal to it in every column, else -1 (:func:`unchanged_rows`). With
    ``fold`` (or past the limits) one part of every row."""
    old_parts = committed.parts if committed is not None else PartTable.empty()
    old_files = [segment_dir(cache_path) / name for name in old_parts.name]
    if fold or unchanged is None or len(old_parts) == 0 or len(old_parts) >= MAX_PARTS:
        return _whole(cache_path, images, old_files)
    new = unchanged < 0
    runs = _merged(RunTable.concat(list(_block_runs(committed.runs, unchanged, len(old_parts)))))
    if len(runs) > MAX_RUNS:
        return _whole(cache_path, images, old_files)
    parts, written = old_parts, []
    if new.any():
        added = write_part(cache_path, images.take(new))
        parts, written = PartTable.concat([old_parts, added]), [segment_dir(cache_path) / added.name[0]]
    used = np.unique(runs.part)
    renumber = np.full(len(parts), -1, np.int64)
    renumber[used] = np.arange(len(used))
    runs.part = renumber[runs.part]
    dropped = [old_files[i] for i in range(len(old_parts)) if renumber[i] < 0]
    return TableLayout(parts.take(used), runs, written, dropped)


def _whole(cache_path: Path, images: ImageTable, old_files: list[Path]) -> TableLayout:
    if len(images) == 0:
        return TableLayout(PartTable.empty(), RunTable.empty(), [], old_files)
    part = write_part(cache_path, images)
    runs = RunTable(part=np.zeros(1, np.int64), start=np.zeros(1, np.int64), length=np.asarray([len(images)], np.int64))
    return TableLayout(part, runs, [segment_dir(cache_path) / part.name[0]], old_files)


_BLOCK = 65536  # rows laid out at a time: a million rows' part and row numbers at once cost ~50 bytes a row


def _block_runs(committed: RunTable, unchanged: np.ndarray, new_part: int):
    """The runs of the new table, a block of its rows at a time: an unchanged row where the committed
    runs put it, a new row at the next row of part ``new_part``."""
    offsets = np.cumsum(committed.length) - committed.length  # where each committed run starts in the table
    added = 0
    for start in range(0, len(unchanged), _BLOCK):
        old = unchanged[start : start + _BLOCK].astype(np.int64)
        fresh = old < 0
        part, row = np.full(len(old), new_part, np.int64), np.empty(len(old), np.int64)
        run = np.searchsorted(offsets, old[~fresh], side="right") - 1
        part[~fresh], row[~fresh] = committed.part[run], committed.start[run] + old[~fresh] - offsets[run]
        row[fresh] = added + np.arange(int(fresh.sum()))
        added += int(fresh.sum())
        yield _runs(part, row)


def _merged(runs: RunTable) -> RunTable:
    """``runs`` with each run that continues the one before it joined to it."""
    if len(runs) < 2:
        return runs
    joins = (runs.part[1:] == runs.part[:-1]) & (runs.start[1:] == runs.start[:-1] + runs.length[:-1])
    starts = np.flatnonzero(np.r_[True, ~joins])
    return RunTable(part=runs.part[starts], start=runs.start[starts], length=np.add.reduceat(runs.length, starts))


def unchanged_rows(old: ImageTable, new: ImageTable) -> np.ndarray:
    """For each row of ``new``: the row of ``old`` equal to it in every column, else -1. Rows are
    matched on a 64-bit hash of (content id, path), unique in a table (a views table repeats paths,
    not ids), then compared column by column (a collision only costs a row written again)."""
    def keys(table: ImageTable) -> np.ndarray:
        paths = np.fromiter(map(hash, table.path.tolist()), np.int64, len(table)).view(np.uint64)
        return id_hashes(table.id) ^ (paths * np.uint64(0x9E3779B97F4A7C15))

    if len(old) == 0 or len(new) == 0:
        return np.full(len(new), -1, np.int64)
    rows = rows_of(keys(old), keys(new))
    found = rows >= 0
    at = np.maximum(rows, 0)
    for name in ("id", "path", "label", "split", "size", "mtime_ns"):
        found &= getattr(old, name)[at] == getattr(new, name)
    return np.where(found, rows, -1)


def _runs(part: np.ndarray, row: np.ndarray) -> RunTable:
    """Consecutive rows of one part, in order, as runs."""
    if len(part) == 0:
        return RunTable.empty()
    starts = np.flatnonzero(np.r_[True, (part[1:] != part[:-1]) | (row[1:] != row[:-1] + 1)])
    lengths = np.diff(np.r_[starts, len(part)])
    return RunTable(part=part[starts].astype(np.int64), start=row[starts].astype(np.int64),
                    length=lengths.astype(np.int64))


def write_part(cache_path: Path, rows: ImageTable) -> PartTable:
    """``rows`` as a new part file (built in memory, then written atomically); its one-row table."""
    name = f"{PART_PREFIX}{uuid.uuid4().hex}.h5"
    image = io.BytesIO()
    with h5py.File(image, "w") as h5:
        stamp(h5, SEGMENT_TYPE)
        h5.attrs["holds"] = "images"
        group = h5.create_group("images")
        stamp(group, SEGMENT_TYPE)
        _canonical(rows).write(group)
    data = image.getbuffer()
    final = segment_dir(cache_path) / name
    with atomic_file(final, before_rename="part-written") as tmp:
        tmp.write_bytes(data)
    stat = final.stat()
    return PartTable(name=str_column([name]), rows=np.asarray([len(rows)], np.int64),
                     size=np.asarray([stat.st_size], np.int64), mtime_ns=np.asarray([stat.st_mtime_ns], np.int64),
                     digest=str_column([hashlib.sha256(data).hexdigest()]))


def _canonical(rows: ImageTable) -> ImageTable:
    """The columns with the types the index's virtual columns declare."""
    return ImageTable(**{f.name: np.asarray(getattr(rows, f.name), _DTYPES[f.name]) for f in fields(ImageTable)})


_DTYPES = {"path": object, "id": ID_DTYPE, "label": np.int32, "split": object, "size": np.int64, "mtime_ns": np.int64}


def write_layout(h5: h5py.File, cache_path: Path, layout: TableLayout) -> None:
    """The index's ``/parts``, ``/runs`` and ``/images`` (virtual columns over the parts)."""
    for name, table in (("parts", layout.parts), ("runs", layout.runs)):
        group = h5.create_group(name)
        stamp(group)
        table.write(group)
    group = h5.create_group("images")
    stamp(group)
    rows = layout.parts.rows
    for column in fields(ImageTable):
        dtype = STR if _DTYPES[column.name] is object else _DTYPES[column.name]
        pieces = ((layout.parts.name[p], f"images/{column.name}", int(rows[p]), int(s), int(n))
                  for p, s, n in zip(layout.runs.part, layout.runs.start, layout.runs.length))
        write_virtual(group, column.name, cache_path, pieces, dtype)


def part_problems(cache_path: Path, parts: PartTable, *, digests: bool = False) -> list[str]:
    """Part files that are missing (their rows would read as blanks), or with ``digests`` whose bytes
    differ from what was committed."""
    problems = []
    for name, digest in zip(parts.name, parts.digest):
        file = segment_dir(cache_path) / name
        if not file.is_file():
            problems.append(f"{file}, a part of the image table, is missing")
        elif digests and hashlib.sha256(file.read_bytes()).hexdigest() != digest:
            problems.append(f"{file} does not hold the image rows committed (its digest differs)")
    return problems
