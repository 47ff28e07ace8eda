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
from pathlib import Path

from featx._gc import gc_paused, release_free_memory
from featx.data.found import Found, dataset_of
from featx.data.images import IMAGE_EXTENSIONS
from featx.data.records import LOOSE_FILES, SPLIT_NAMES, Dataset, ImageRecord
from featx.data.walk import image_names, image_subfolders, walk_images
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
    finally:
        release_free_memory()  # the walk's strings and entries, freed: not kept for the stages after


def _scan_folder(source: Path) -> Dataset:
    """Layouts (a), (b) and (d): which one is decided by the subfolders that hold images."""
    subfolders = image_subfolders(source)
    if not subfolders:
        loose = image_names(source)
        if not loose:
            raise FeatxError(f"{source} contains no image files; {_EXPECTED}.")
        return dataset_of(source, source, "unlabelled", (), (Found(source / name, -1, "") for name in loose))
    split_like = [name for name in subfolders if name.lower() in SPLIT_NAMES]
    if len(split_like) == len(subfolders):
        return _scan_splits(source, subfolders)
    warnings = _left_out(source, "class folders")
    if split_like:
        warnings.append(_split_named_class(source, split_like, subfolders))
    fences = (os.path.realpath(source),)
    labelled = (Found(image, label, "") for label, name in enumerate(subfolders)
                for image in walk_images(source / name, fences))
    return dataset_of(source, source, "classes", tuple(subfolders), labelled, warnings)


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
        class_folders = image_subfolders(folder)  # walked as the records are made, not before
        # A split folder with no class subfolders holds unlabelled images of that split.
        loose = [] if class_folders else [folder / f for f in image_names(folder)]
        if class_folders:
            warnings += _left_out(folder, "class folders")
        per_split.append((SPLIT_NAMES[name.lower()], folder, class_folders, loose))
    classes = tuple(sorted({cls for _, _, class_folders, _ in per_split for cls in class_folders}))

    def found() -> Iterator[Found]:
        for split, folder, class_folders, loose in per_split:
            for cls in class_folders:
                label = classes.index(cls)
                yield from (Found(image, label, split) for image in walk_images(folder / cls, fences))
            yield from (Found(image, -1, split) for image in loose)

    return dataset_of(source, source, "splits", classes, found(), warnings)


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
    labelled = (Found(p, classes.index(label) if label else -1, split, line)
                for p, label, split, line in entries)
    return dataset_of(root, source, "manifest", classes, labelled)
