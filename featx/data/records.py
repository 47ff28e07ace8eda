"""A dataset's images as records: where each file is, its class and its split (no I/O)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featx.data.packed import CodedStrings, PackedStrings

SPLITS = ("train", "val", "test")  # the splits a dataset can have; "" is "no split given"
LOOSE_FILES = "files"  # the layout of loose files: absolute paths, no labels, no split
SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "test": "test", "": ""}  # folder or cell -> split
SPLIT_ORDER = {"train": 0, "val": 1, "test": 2, "": 3}  # records are sorted by split, then path


@dataclass(frozen=True, slots=True)  # slots: a scan of a million images holds a million of these
class ImageRecord:
    """One image of a dataset: where it is, its class and its split."""

    path: str  # relative to Dataset.root with "/" separators, or absolute (manifest only)
    label: int  # index into Dataset.classes, -1 when unlabelled
    split: str  # "train" | "val" | "test" | "" (no split given)


SPLIT_CODES = (*SPLITS, "")  # a split column's codes (uint8) index this; their order is SPLIT_ORDER's


class RecordColumns(Sequence[ImageRecord]):
    """A scan's records held as columns: the paths packed (:class:`PackedStrings`), the labels (int32)
    and the splits (uint8 codes into :data:`SPLIT_CODES`) — about 40 bytes an image, where a million
    :class:`ImageRecord` objects and their path strings cost about 140. Records are made on access."""

    def __init__(self, paths: PackedStrings, labels: np.ndarray, splits: np.ndarray):
        self.paths, self.labels, self.splits = paths, labels, splits

    @classmethod
    def of(cls, records: Sequence[ImageRecord]) -> RecordColumns:
        """The columns of any sequence of records."""
        if isinstance(records, RecordColumns):
            return records
        return cls(PackedStrings.from_strings(r.path for r in records),
                   np.fromiter((r.label for r in records), np.int32, len(records)),
                   np.fromiter((SPLIT_ORDER[r.split] for r in records), np.uint8, len(records)))

    def split_names(self) -> CodedStrings:
        """The split of each record, as a column of ``str`` held as one byte each."""
        return CodedStrings(self.splits, SPLIT_CODES)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, key):
        if isinstance(key, slice):
            return RecordColumns(self.paths[key], self.labels[key], self.splits[key])
        row = range(len(self))[key]
        return ImageRecord(self.paths[row], int(self.labels[row]), SPLIT_CODES[self.splits[row]])

    def __iter__(self) -> Iterator[ImageRecord]:
        for path, label, split in zip(self.paths, self.labels.tolist(), self.splits.tolist()):
            yield ImageRecord(path, label, SPLIT_CODES[split])

    def __eq__(self, other) -> bool:
        if not isinstance(other, Sequence) or len(other) != len(self):
            return False
        return all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RecordColumns({len(self)} records)"


@dataclass(frozen=True)
class Dataset:
    """The images found at a DATA path, with the class names their labels index."""

    root: Path  # absolute folder that record paths are relative to
    source: Path  # absolute path the user gave (folder or CSV file)
    layout: str  # "classes" | "splits" | "manifest" | "unlabelled" | LOOSE_FILES
    classes: tuple[str, ...]  # sorted class names
    records: Sequence[ImageRecord]  # a tuple, or RecordColumns (a scan of folders)
    warnings: tuple[str, ...] = ()  # what the scan left out or merged, one line each, for the user

    @property
    def is_loose_files(self) -> bool:
        """Loose files (no dataset): their cache keeps every vector it ever computed."""
        return self.layout == LOOSE_FILES
