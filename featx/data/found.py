"""What a scan found, made into a :class:`Dataset`: one record per file (a file reached twice is
an error or a warning), the records as columns, sorted by split then path."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from featx.data.packed import PackedStrings
from featx.data.records import SPLIT_ORDER, Dataset, RecordColumns
from featx.data.walk import real_file, relative_path
from featx.errors import DatasetError


class Found(NamedTuple):
    """An image as a scan found it, before the checks of :func:`dataset_of`."""

    path: Path | str  # str: found by a folder walk (absolute, normal); Path: from a manifest
    label: int
    split: str
    row: int = 0  # its line in a manifest (0 for folders), to name it in messages


_BLOCK = 65536  # images found turned into columns at a time


def dataset_of(root: Path, source: Path, layout: str, classes: tuple[str, ...],
               found: Iterable[Found], warnings: Sequence[str] = ()) -> Dataset:
    """A Dataset of one record per file, sorted by split (train, val, test, none) then path, its
    records held as columns (:class:`RecordColumns`). ``found`` is consumed a block at a time (give
    a generator): a million entries, their path strings and records side by side would cost ~400
    bytes an image; the columns cost ~40."""
    real_dirs: dict[str, tuple[str, frozenset[str] | None]] = {}
    paths, labels, splits, rows, reals = [], [], [], [], []
    for block in _blocks(found):
        reals.append(np.fromiter((hash(real_file(e.path, real_dirs)) for e in block), np.int64, len(block)))
        paths.append(PackedStrings.from_strings(_relatives(block, root)))
        labels.append(np.fromiter((e.label for e in block), np.int32, len(block)))
        splits.append(np.fromiter((SPLIT_ORDER[e.split] for e in block), np.uint8, len(block)))
        rows.append(np.fromiter((e.row for e in block), np.int64, len(block)))
    records = RecordColumns(PackedStrings.concat(paths), _joined(labels, np.int32), _joined(splits, np.uint8))
    del paths, labels, splits
    dropped, doubles = _one_per_file(root, source, classes, records, _joined(rows, np.int64), _joined(reals, np.int64))
    if dropped:
        keep = np.ones(len(records), bool)
        keep[dropped] = False
        records = RecordColumns(records.paths[keep], records.labels[keep], records.splits[keep])
    return Dataset(root, source, layout, classes, _sorted(records), (*warnings, *doubles))


def _blocks(found: Iterable[Found]) -> Iterator[list[Found]]:
    block: list[Found] = []
    for entry in found:
        block.append(entry)
        if len(block) == _BLOCK:
            yield block
            block = []
    if block:
        yield block


def _joined(blocks: list[np.ndarray], dtype) -> np.ndarray:
    return np.concatenate(blocks) if blocks else np.zeros(0, dtype)


def _sorted(records: RecordColumns) -> RecordColumns:
    """``records`` sorted by split, then path (a folder walk finds them in that order, usually: then
    nothing is sorted or copied)."""
    if _in_order(records):
        return records
    strings = np.asarray(records.paths)
    order = np.argsort(strings, kind="stable")
    order = order[np.argsort(records.splits[order], kind="stable")]
    paths = PackedStrings.from_strings(strings[order])
    return RecordColumns(paths, records.labels[order], records.splits[order])


def _in_order(records: RecordColumns) -> bool:
    splits = records.splits
    if len(splits) > 1 and bool((splits[1:] < splits[:-1]).any()):
        return False
    same_split = (splits[1:] == splits[:-1]).tolist()
    paths = iter(records.paths)
    previous = next(paths, None)
    for same, path in zip(same_split, paths):
        if same and path < previous:
            return False
        previous = path
    return True


def _one_per_file(root: Path, source: Path, classes: tuple[str, ...], records: RecordColumns,
                  rows: np.ndarray, reals: np.ndarray) -> tuple[list[int], list[str]]:
    """One label and split per file: the records to drop, and a warning. A file found with two labels
    or in two splits is an error that names both places. Found twice alike, it is a warning: a
    repeated manifest row (``rows``, 0 for folders) is used once; a link in a folder is a second name
    the user made, so both paths stay (one vector, two rows). Only records whose real paths share a
    hash (``reals``) are compared: the others are made into entries again only then."""
    real_dirs: dict[str, tuple[str, frozenset[str] | None]] = {}
    first: dict[str, Found] = {}
    dropped, doubles = [], []
    prefix = str(root).rstrip(os.sep) + os.sep
    for row in sorted(_shared_hashes(reals)):
        record = records[row]
        path = record.path if os.path.isabs(record.path) else prefix + record.path
        entry = Found(path, record.label, record.split, int(rows[row]))
        seen = first.setdefault(real_file(path, real_dirs), entry)
        if seen is entry:
            continue
        if (seen.label, seen.split) != (entry.label, entry.split):
            raise DatasetError(_conflict(root, source, classes, seen, entry))
        doubles.append((seen, entry))
        if entry.row:
            dropped.append(row)
    if not doubles:
        return dropped, []
    seen, entry = doubles[0]
    name = relative_path(entry.path, root)
    if entry.row:
        example, outcome = f"{source} lists {name} on rows {seen.row} and {entry.row}", "used once"
    else:
        example = f"{name} is the same file as {relative_path(seen.path, root)} (a link)"
        outcome = "kept under both names, one vector twice"
    if len(doubles) == 1:
        return dropped, [f"{example}: {outcome}."]
    return dropped, [f"{len(doubles)} files are found twice (e.g. {example}): {outcome}."]


def _shared_hashes(hashes: np.ndarray) -> set[int]:
    """The rows of ``hashes`` whose value another row shares (equal strings among them)."""
    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    same = np.flatnonzero(ordered[1:] == ordered[:-1])
    return set(order[same].tolist()) | set(order[same + 1].tolist())


def _conflict(root: Path, source: Path, classes: tuple[str, ...], seen: Found, entry: Found) -> str:
    """The message for one file found with two labels or in two splits."""

    def what(found: Found) -> str:
        parts = []
        if found.label != seen.label or found.label != entry.label:
            parts.append(f"label {classes[found.label]!r}" if found.label >= 0 else "no label")
        if found.split != seen.split or found.split != entry.split:
            parts.append(f"split {found.split!r}" if found.split else "no split")
        return " in ".join(parts)

    rule = "a file has one label and one split"
    if entry.row:
        return (f"{source} lists {relative_path(entry.path, root)} with {what(seen)} on row {seen.row} and "
                f"with {what(entry)} on row {entry.row}; {rule}: keep one of the rows.")
    return (f"{relative_path(seen.path, root)} ({what(seen)}) and {relative_path(entry.path, root)} "
            f"({what(entry)}) are the same file, reached twice through a link; {rule}: remove the link.")


def _relatives(found: list[Found], root: Path) -> Iterator[str]:
    """:func:`relative_path` of every path found, one at a time; a walked path under ``root`` (a str,
    absolute and normal) needs only a slice, which matters at millions of files."""
    prefix = str(root).rstrip(os.sep) + os.sep
    cut = len(prefix)
    for f in found:
        yield (f.path[cut:] if os.sep == "/" and isinstance(f.path, str) and f.path.startswith(prefix)
               and len(f.path) > cut else relative_path(f.path, root))
