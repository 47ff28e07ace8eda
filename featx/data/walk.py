"""Walking a data folder: image files in a stable order, links followed once (never back into the
data), paths relative to the root."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

from featx.data.images import is_image_file, is_image_name
from featx.errors import DatasetError


def real_file(path: Path | str, real_dirs: dict[str, tuple[str, frozenset[str] | None]]) -> str:
    """The real path of ``path`` (links resolved), resolving each folder and listing its links only
    once (the listing says which names are links: no system call per file)."""
    path = path if isinstance(path, str) else os.path.abspath(path)
    folder, _, name = path.rpartition(os.sep)  # os.path.split's answer, at a third of its cost
    folder = folder or (os.sep if path.startswith(os.sep) else "")
    if folder not in real_dirs:
        real = os.path.realpath(folder)
        real_dirs[folder] = (real if real.endswith(os.sep) else real + os.sep, _links_in(folder))
    real, links = real_dirs[folder]
    if links is not None and name not in links and len(real) == len(folder) + 1 and real.startswith(folder):
        return path  # a real folder and no link: the path itself (no new string per file of the dataset)
    full = real + name  # not os.path.join: this runs once per file of the dataset
    is_link = os.path.islink(full) if links is None else name in links
    return os.path.realpath(full) if is_link else full


def _links_in(folder: str) -> frozenset[str] | None:
    """The names of the symbolic links in ``folder``; None when it cannot be listed."""
    try:
        with os.scandir(folder) as entries:
            return frozenset(e.name for e in entries if e.is_symlink())
    except OSError:
        return None


def relative_path(path: Path, root: Path) -> str:
    """`path` relative to `root` with "/" separators, or absolute when it lies outside root."""
    text, prefix = str(path), str(root).rstrip(os.sep) + os.sep
    if os.sep == "/" and text.startswith(prefix):  # the common case, found by walking root: no relpath
        rest = text[len(prefix):]
        if rest and rest == os.path.normpath(rest) and not rest.startswith(os.pardir):
            return rest
    full = os.path.normpath(os.path.join(root, path))
    relative = os.path.relpath(full, root)
    if relative == os.pardir or relative.startswith(os.pardir + os.sep):
        return Path(full).as_posix()
    return Path(relative).as_posix()


def image_subfolders(folder: Path) -> list[str]:
    """Sorted names of the visible subfolders of `folder` that hold an image at any depth."""
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if not e.name.startswith(".") and e.is_dir())
    return [name for name in names if _holds_image(os.path.join(folder, name), set())]


def _holds_image(dirpath: str, seen: set[str]) -> bool:
    """Whether ``dirpath`` holds an image file at any depth: stops at the first one found, without
    sorting or keeping the listing (a class folder of a million files is listed once, by the walk)."""
    real = os.path.realpath(dirpath)
    if real in seen:
        return False
    seen.add(real)
    folders = []
    try:
        with os.scandir(dirpath) as entries:
            for entry in entries:
                if entry.name.startswith(".") or not _is_dir(entry):
                    if is_image_name(entry.name) and not _is_dir(entry):
                        return True
                else:
                    folders.append(entry.path)
    except OSError:
        return True  # unreadable: the walk that follows reports it
    return any(_holds_image(folder, seen) for folder in sorted(folders))


def image_names(folder: Path) -> list[str]:
    """Names of the image files lying directly in `folder`."""
    with os.scandir(folder) as entries:
        # Every image-named entry that is not a folder is kept (broken links, FIFOs, devices too): the
        # embedder reports those as skipped with the reason, rather than the scan leaving them out unsaid.
        return sorted(e.name for e in entries if is_image_file(e.name) and not _is_dir(e))


def walk_images(folder: Path, fences: Sequence[str] = ()) -> Iterator[str]:
    """Image files under `folder` in a stable order (paths as strings: a scan of millions builds
    no Path objects); follows symlinks, not loops; skips hidden.

    A folder that cannot be read raises OSError. A folder that resolves to one of ``fences`` (real
    paths: the data folder, the split folders) or above one is a link back into the dataset, which
    would read its images again under this class: a :class:`DatasetError`.
    """
    seen: set[str] = set()

    def visit(dirpath: str) -> Iterator[str]:
        real = os.path.realpath(dirpath)
        if real in seen:
            return
        seen.add(real)
        if any(fence == real or fence.startswith(real.rstrip(os.sep) + os.sep) for fence in fences):
            raise DatasetError(
                f"{dirpath} is a link to {real}, the data folder or a folder above it, so its images "
                "would be read again under another class: remove the link, or move it out of the data folder."
            )
        with os.scandir(dirpath) as entries:  # an unreadable folder raises: never a silent gap
            entries = sorted(entries, key=lambda e: e.name)
        folders = [e.name for e in entries if not e.name.startswith(".") and _is_dir(e)]
        prefix = dirpath if dirpath.endswith(os.sep) else dirpath + os.sep
        # the directory listing says what is a file or a link: no stat per regular file
        yield from (prefix + e.name for e in entries
                    if is_image_name(e.name) and not _is_dir(e))  # not regular: skipped with its reason
        for name in folders:  # symlinked folders are followed (loops are not)
            yield from visit(os.path.join(dirpath, name))

    yield from visit(os.fspath(folder))


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False
