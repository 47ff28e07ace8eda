"""A dataset's images as records: where each file is, its class and its split (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


@dataclass(frozen=True)
class Dataset:
    """The images found at a DATA path, with the class names their labels index."""

    root: Path  # absolute folder that record paths are relative to
    source: Path  # absolute path the user gave (folder or CSV file)
    layout: str  # "classes" | "splits" | "manifest" | "unlabelled" | LOOSE_FILES
    classes: tuple[str, ...]  # sorted class names
    records: tuple[ImageRecord, ...]
    warnings: tuple[str, ...] = ()  # what the scan left out or merged, one line each, for the user

    @property
    def is_loose_files(self) -> bool:
        """Loose files (no dataset): their cache keeps every vector it ever computed."""
        return self.layout == LOOSE_FILES
