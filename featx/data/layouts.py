"""Finding the images of a dataset and their labels, without TensorFlow.

Four layouts of a DATA path are understood: a folder of class subfolders (as Keras'
`image_dataset_from_directory`), a folder of train/val/test split folders each holding class
subfolders, a CSV manifest `path,label[,split]`, and a plain folder of unlabelled images. A fifth
kind, loose files (:func:`loose_files`), is a list of image files with no dataset around them:
what ``predict`` and ``Embedder`` embed.

A scan never guesses in silence. What it cannot read plainly is an error that names the folders or
rows (split folders beside other folders, a link back into the data, one file with two labels or
splits, an unreadable folder); what it leaves out or merges is a warning in ``Dataset.warnings``
(images beside class folders, one file listed twice alike, a class named like a split).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator, Sequence
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

import numpy as np

from featx._gc import gc_paused
from featx.data.images import IMAGE_EXTENSIONS
from featx.data.records import LOOSE_FILES, SPLIT_NAMES, SPLIT_ORDER, Dataset, ImageRecord
from featx.data.walk import image_names, image_subfolders, real_file, relative_path, walk_images
from featx.errors import DatasetError, FeatxError, MissingFileError, OptionError

_EXPECTED = (
    "expected a folder of class subfolders, a folder of train/val/test folders holding class "
    "subfolders, a folder of images, or a CSV manifest with columns path,label[,split]"
)


def loose_files(paths: Sequence[str | os.PathLike]) -> Dataset:
    """Image files with no dataset around them, as a :class:`Dataset` of absolute paths."""
    files = [os.path.abspath(p) for p in paths]
    top = Path(os.path.abspath(os.sep))
    return Dataset(root=top, source=top, layout=LOOSE_FILES, classes=(),
                   records=tuple(ImageRecord(Path(p).as_posix(), -1, "") for p in files))


@gc_paused()
def scan_dataset(data: str | os.PathLike) -> Dataset:
    """Find the images and labels at `data`, a folder or a CSV manifest, in a stable order; a URL
    (``s3://...``) is listed through fsspec (:func:`featx.data.objectstore.scan_url`)."""
    if isinstance(data, str) and "://" in data:
        from featx.data.objectstore import is_url, scan_url

        if is_url(data):
            return scan_url(data)
    source = Path(os.path.abspath(os.path.expanduser(os.fspath(data))))
    if not source.exists():
        raise MissingFileError(f"{{param}}: {source} does not exist; {_EXPECTED}.", param="data")
    if source.is_file():
        if source.suffix.lower() != ".csv":
            raise OptionError(f"{{param}}: {source} is a file but not a .csv manifest; {_EXPECTED}.", param="data")
        return _scan_manifest(source)
    try:
        return _scan_folder(source)
    except OSError as exc:
        raise _unreadable(exc, source) from None


class _Found(NamedTuple):
    """An image as a scan found it, before the checks of :func:`_dataset`."""

    path: Path | str  # str: found by a folder walk (absolute, normal); Path: from a manifest
    label: int
    split: str
    row: int = 0  # its line in a manifest (0 for folders), to name it in messages


def _scan_folder(source: Path) -> Dataset:
    """Layouts (a), (b) and (d): which one is decided by the subfolders that hold images."""
    subfolders = image_subfolders(source)
    if not subfolders:
        loose = [source / name for name in image_names(source)]
        if not loose:
            raise FeatxError(f"{source} contains no image files; {_EXPECTED}.")
        return _dataset(source, source, "unlabelled", (), [_Found(image, -1, "") for image in loose])
    split_like = [name for name in subfolders if name.lower() in SPLIT_NAMES]
    if len(split_like) == len(subfolders):
        return _scan_splits(source, subfolders)
    warnings = _left_out(source, "class folders")
    if split_like:
        warnings.append(_split_named_class(source, split_like, subfolders))
    fences = (os.path.realpath(source),)
    labelled = [_Found(image, label, "") for label, name in enumerate(subfolders)
                for image in walk_images(source / name, fences)]
    return _dataset(source, source, "classes", tuple(subfolders), labelled, warnings)


def _split_named_class(source: Path, split_like: list[str], subfolders: list[str]) -> str:
    """The warning for one flat class folder named like a split; an error when the folders look
    like splits (two split names, or one holding class folders) mixed with folders that are not."""
    others = [name for name in subfolders if name not in split_like]
    if len(split_like) > 1 or image_subfolders(source / split_like[0]):
        are, them = ("is not one", "it") if len(others) == 1 else ("are not splits", "them")
        raise DatasetError(
            f"In {source}, {_folders(split_like)} look like splits but {_folders(others)} {are}: "
            f"move {them} into a split folder or out of the data folder, or label the images with "
            "a CSV manifest (path,label,split)."
        )
    are = "is a class" if len(others) == 1 else "are classes"
    return (f"{source / split_like[0]}/ is named like a split but is read as a class, since "
            f"{_folders(others)} beside it {are}; rename it, or use train/val/test folders "
            "holding class folders.")


def _folders(names: Sequence[str], most: int = 5) -> str:
    """``a/, b/ and c/`` or ``a/, b/ and 3 more``: folder names for a one-line message."""
    shown = [f"{name}/" for name in names[:most]]
    if len(names) > most:
        shown.append(f"{len(names) - most} more")
    return " and ".join(shown) if len(shown) < 3 else ", ".join(shown[:-1]) + " and " + shown[-1]


def _left_out(folder: Path, beside: str) -> list[str]:
    """A warning for the images lying directly in ``folder`` beside its ``beside``: no label, not used."""
    names = image_names(folder)
    if not names:
        return []
    examples = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    count = "1 image lies" if len(names) == 1 else f"{len(names)} images lie"
    return [f"{count} directly in {folder} ({examples}) beside {beside}, with no label: left out. "
            "Move them into a class folder, or list them in a CSV manifest."]


def _unreadable(exc: OSError, fallback: Path) -> FeatxError:
    """The error for a folder (or file) a scan could not read: never skipped in silence."""
    where = exc.filename or fallback
    return FeatxError(f"cannot read {where}: {exc.strerror or exc}; fix its permissions, or move it "
                      "out of the data folder.")


def collect_image_files(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The image files named by `inputs`: files as given, folders searched recursively; sorted."""
    found: dict[str, Path] = {}
    for item in inputs:
        path = Path(os.path.expanduser(os.fspath(item)))
        if path.is_dir():
            try:
                candidates = [Path(p) for p in walk_images(path)]
            except OSError as exc:
                raise _unreadable(exc, path) from None
        elif path.is_file():
            candidates = [path]
        else:
            raise MissingFileError(f"input path {path} does not exist; give image files or folders.")
        for candidate in candidates:
            found.setdefault(os.path.abspath(candidate), candidate)
    if not found:
        names = ", ".join(os.fspath(item) for item in inputs) or "(nothing given)"
        known = " ".join(sorted(IMAGE_EXTENSIONS))
        raise FeatxError(f"no image files found in {names}; image extensions are {known}.")
    return sorted(found.values(), key=os.fspath)


def _scan_splits(source: Path, split_names: Iterable[str]) -> Dataset:
    """Layout (b): train/val/test folders, each holding class subfolders."""
    split_names = list(split_names)
    fences = (os.path.realpath(source), *(os.path.realpath(source / name) for name in split_names))
    warnings = _left_out(source, "split folders")
    per_split = []
    for name in split_names:
        folder = source / name
        class_images = {cls: list(walk_images(folder / cls, fences)) for cls in image_subfolders(folder)}
        # A split folder with no class subfolders holds unlabelled images of that split.
        loose = [] if class_images else [folder / f for f in image_names(folder)]
        if class_images:
            warnings += _left_out(folder, "class folders")
        per_split.append((SPLIT_NAMES[name.lower()], class_images, loose))
    classes = tuple(sorted({cls for _, class_images, _ in per_split for cls in class_images}))
    found = []
    for split, class_images, loose in per_split:
        found += [_Found(img, classes.index(cls), split) for cls, imgs in class_images.items()
                  for img in imgs]
        found += [_Found(img, -1, split) for img in loose]
    return _dataset(source, source, "splits", classes, found, warnings)


def _scan_manifest(source: Path) -> Dataset:
    """Layout (c): a CSV file with columns path,label[,split]; paths relative to its folder."""
    root = source.parent
    try:
        with open(source, newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            header = [column.strip().lower() for column in next(reader, [])]
            if "path" not in header:
                found = ", ".join(header) or "none"
                raise FeatxError(f"manifest {source} has no 'path' column (columns found: "
                                 f"{found}); expected a header row path,label[,split].")
            rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FeatxError(f"cannot read manifest {source}: {exc}") from None
    if not rows:
        raise FeatxError(f"manifest {source} has a header but no rows; {_EXPECTED}.")
    column = {name: header.index(name) for name in ("path", "label", "split") if name in header}
    entries = []
    for line, row in rows:
        cell = {name: (row[i].strip() if i < len(row) else "") for name, i in column.items()}
        split = SPLIT_NAMES.get(cell.get("split", "").lower())
        if split is None:
            raise FeatxError(f"manifest {source} row {line}: unknown split {cell['split']!r}; "
                             "allowed: train, val, validation, test or empty.")
        if not cell["path"]:
            raise FeatxError(f"manifest {source} row {line}: the path is empty.")
        if "\x00" in cell["path"]:
            raise FeatxError(f"manifest {source} row {line}: the path holds a NUL byte (\\0); remove it.")
        entries.append((root / cell["path"], cell.get("label", ""), split, line))
    classes = tuple(sorted({label for _, label, _, _ in entries if label}))
    labelled = [_Found(p, classes.index(label) if label else -1, split, line)
                for p, label, split, line in entries]
    return _dataset(root, source, "manifest", classes, labelled)


def _dataset(root: Path, source: Path, layout: str, classes: tuple[str, ...],
             found: list[_Found], warnings: Sequence[str] = ()) -> Dataset:
    """A Dataset of one record per file, sorted by split (train, val, test, none) then path. ``found``
    is emptied, each entry freed as soon as its record is made: a million of both side by side would
    double the scan's peak memory."""
    kept, doubles = _one_per_file(root, source, classes, found)
    found.clear()
    records = []
    for row, (path, entry) in enumerate(zip(_relatives(kept, root), kept)):
        records.append(ImageRecord(path, entry.label, entry.split))
        kept[row] = None  # type: ignore[call-overload]
    records.sort(key=attrgetter("path"))  # then by split, stable: no key tuple per record
    records.sort(key=lambda r: SPLIT_ORDER[r.split])
    return Dataset(root, source, layout, classes, tuple(records), (*warnings, *doubles))


def _one_per_file(root: Path, source: Path, classes: tuple[str, ...],
                  found: list[_Found]) -> tuple[list[_Found], list[str]]:
    """One label and split per file. A file found with two labels or in two splits is an error that
    names both places. Found twice alike, it is a warning: a repeated manifest row is used once; a
    link in a folder is a second name the user made, so both paths stay (one vector, two rows).
    Only entries whose real paths share a hash are compared (a dict of a million paths: ~70 bytes each)."""
    real_dirs: dict[str, tuple[str, frozenset[str] | None]] = {}
    reals = [real_file(entry.path, real_dirs) for entry in found]
    suspects = _shared_hashes(reals)
    first: dict[str, _Found] = {}
    kept, doubles = [], []
    for row, entry in enumerate(found):
        if row not in suspects:  # no other entry has its real path
            kept.append(entry)
            continue
        seen = first.setdefault(reals[row], entry)
        if seen is entry:
            kept.append(entry)
        elif (seen.label, seen.split) != (entry.label, entry.split):
            raise DatasetError(_conflict(root, source, classes, seen, entry))
        else:
            doubles.append((seen, entry))
            if not entry.row:
                kept.append(entry)
    if not doubles:
        return kept, []
    seen, entry = doubles[0]
    name = relative_path(entry.path, root)
    if entry.row:
        example, outcome = f"{source} lists {name} on rows {seen.row} and {entry.row}", "used once"
    else:
        example = f"{name} is the same file as {relative_path(seen.path, root)} (a link)"
        outcome = "kept under both names, one vector twice"
    if len(doubles) == 1:
        return kept, [f"{example}: {outcome}."]
    return kept, [f"{len(doubles)} files are found twice (e.g. {example}): {outcome}."]


def _shared_hashes(strings: list[str]) -> set[int]:
    """The rows of ``strings`` whose hash another row shares (equal strings among them)."""
    hashes = np.fromiter(map(hash, strings), np.int64, len(strings))
    order = np.argsort(hashes, kind="stable")
    ordered = hashes[order]
    same = np.flatnonzero(ordered[1:] == ordered[:-1])
    return set(order[same].tolist()) | set(order[same + 1].tolist())


def _conflict(root: Path, source: Path, classes: tuple[str, ...], seen: _Found, entry: _Found) -> str:
    """The message for one file found with two labels or in two splits."""

    def what(found: _Found) -> str:
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


def _relatives(found: list[_Found], root: Path) -> Iterator[str]:
    """:func:`relative_path` of every path found, one at a time; a walked path under ``root`` (a str,
    absolute and normal) needs only a slice, which matters at millions of files."""
    prefix = str(root).rstrip(os.sep) + os.sep
    cut = len(prefix)
    for f in found:
        yield (f.path[cut:] if os.sep == "/" and isinstance(f.path, str) and f.path.startswith(prefix)
               and len(f.path) > cut else relative_path(f.path, root))
