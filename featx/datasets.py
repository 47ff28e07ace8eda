"""Finding the images of a dataset and their labels, without TensorFlow.

Four layouts of a DATA path are understood: a folder of class subfolders (as Keras'
`image_dataset_from_directory`), a folder of train/val/test split folders each holding class
subfolders, a CSV manifest `path,label[,split]`, and a plain folder of unlabelled images. A fifth
kind, loose files (:func:`loose_files`), is a list of image files with no dataset around them:
what ``predict`` and ``Embedder`` embed.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from featx.errors import FeatxError, MissingFileError, OptionError
from featx.images import IMAGE_EXTENSIONS, is_image_file

SPLITS = ("train", "val", "test")  # the splits a dataset can have; "" is "no split given"
LOOSE_FILES = "files"  # the layout of loose files: absolute paths, no labels, no split
_SPLIT_NAMES = {"train": "train", "val": "val", "validation": "val", "test": "test", "": ""}
_SPLIT_ORDER = {"train": 0, "val": 1, "test": 2, "": 3}
_EXPECTED = (
    "expected a folder of class subfolders, a folder of train/val/test folders holding class "
    "subfolders, a folder of images, or a CSV manifest with columns path,label[,split]"
)


@dataclass(frozen=True)
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

    @property
    def is_loose_files(self) -> bool:
        """Loose files (no dataset): their cache keeps every vector it ever computed."""
        return self.layout == LOOSE_FILES


def loose_files(paths: Sequence[str | os.PathLike]) -> Dataset:
    """Image files with no dataset around them, as a :class:`Dataset` of absolute paths."""
    files = [os.path.abspath(p) for p in paths]
    top = Path(os.path.abspath(os.sep))
    return Dataset(root=top, source=top, layout=LOOSE_FILES, classes=(),
                   records=tuple(ImageRecord(Path(p).as_posix(), -1, "") for p in files))


def scan_dataset(data: str | os.PathLike) -> Dataset:
    """Find the images and labels at `data`, a folder or a CSV manifest, in a stable order."""
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
        raise FeatxError(f"cannot read the data folder {source}: {exc.strerror or exc}") from None


def _scan_folder(source: Path) -> Dataset:
    """Layouts (a), (b) and (d): which one is decided by the subfolders that hold images."""
    subfolders = _image_subfolders(source)
    if subfolders and all(name.lower() in _SPLIT_NAMES for name in subfolders):
        return _scan_splits(source, subfolders)
    if subfolders:
        labelled = [(image, label, "") for label, name in enumerate(subfolders)
                    for image in _walk_images(source / name)]
        return _dataset(source, source, "classes", tuple(subfolders), labelled)
    loose = [source / name for name in _image_names(source)]
    if not loose:
        raise FeatxError(f"{source} contains no image files; {_EXPECTED}.")
    return _dataset(source, source, "unlabelled", (), [(image, -1, "") for image in loose])


def collect_image_files(inputs: Sequence[str | os.PathLike]) -> list[Path]:
    """The image files named by `inputs`: files as given, folders searched recursively; sorted."""
    found: dict[str, Path] = {}
    for item in inputs:
        path = Path(os.path.expanduser(os.fspath(item)))
        if path.is_dir():
            candidates = _walk_images(path)
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
    per_split = []
    for name in split_names:
        folder = source / name
        class_images = {cls: list(_walk_images(folder / cls)) for cls in _image_subfolders(folder)}
        # A split folder with no class subfolders holds unlabelled images of that split.
        loose = [] if class_images else [folder / f for f in _image_names(folder)]
        per_split.append((_SPLIT_NAMES[name.lower()], class_images, loose))
    classes = tuple(sorted({cls for _, class_images, _ in per_split for cls in class_images}))
    found = []
    for split, class_images, loose in per_split:
        found += [(img, classes.index(cls), split) for cls, imgs in class_images.items()
                  for img in imgs]
        found += [(img, -1, split) for img in loose]
    return _dataset(source, source, "splits", classes, found)


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
        split = _SPLIT_NAMES.get(cell.get("split", "").lower())
        if split is None:
            raise FeatxError(f"manifest {source} row {line}: unknown split {cell['split']!r}; "
                             "allowed: train, val, validation, test or empty.")
        if not cell["path"]:
            raise FeatxError(f"manifest {source} row {line}: the path is empty.")
        entries.append((root / cell["path"], cell.get("label", ""), split))
    classes = tuple(sorted({label for _, label, _ in entries if label}))
    labelled = [(p, classes.index(label) if label else -1, split) for p, label, split in entries]
    return _dataset(root, source, "manifest", classes, labelled)


def _dataset(root: Path, source: Path, layout: str, classes: tuple[str, ...],
             found: list[tuple[Path, int, str]]) -> Dataset:
    """A Dataset whose records are sorted by split (train, val, test, none) then path."""
    records = [ImageRecord(_relative(path, root), label, split) for path, label, split in found]
    records.sort(key=lambda r: (_SPLIT_ORDER[r.split], r.path))
    return Dataset(root, source, layout, classes, tuple(records))


def _relative(path: Path, root: Path) -> str:
    """`path` relative to `root` with "/" separators, or absolute when it lies outside root."""
    full = os.path.normpath(os.path.join(root, path))
    relative = os.path.relpath(full, root)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return Path(full).as_posix()
    return Path(relative).as_posix()


def _image_subfolders(folder: Path) -> list[str]:
    """Sorted names of the visible subfolders of `folder` that hold an image at any depth."""
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())
    return [name for name in names if next(_walk_images(folder / name), None) is not None]


def _image_names(folder: Path) -> list[str]:
    """Names of the image files lying directly in `folder`."""
    with os.scandir(folder) as entries:
        # Broken symlinks are kept: the embedder reports them as skipped, with the reason.
        return sorted(e.name for e in entries if is_image_file(e.name) and (e.is_file() or e.is_symlink()))


def _walk_images(folder: Path) -> Iterator[Path]:
    """Image files under `folder` in a stable order; follows symlinks, not loops; skips hidden."""
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames.clear()
            continue
        seen.add(real)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        yield from (Path(dirpath, f) for f in sorted(filenames)
                    if is_image_file(f) and _file_or_link(os.path.join(dirpath, f)))


def _file_or_link(path: str) -> bool:
    """A regular file, or a symlink (a broken one is reported as skipped by the embedder)."""
    return os.path.isfile(path) or os.path.islink(path)
