"""Datasets kept in object stores (``s3://``, ``gs://``, ``memory://``, ``file://``...), through fsspec.

A URL names a dataset as a folder does: images directly under it (unlabelled), in class folders, or
in train/val/test folders of class folders. One listing gives every file's size and modification
time, so a rerun hashes only what changed, as for local files (:func:`featx.engine.fileindex.index_files`
with :class:`ObjectFiles`); files are read where they are decoded, so with ``engine="ray"`` the
bytes go from the store to the workers, never through the driver. Reading ``s3://`` or ``gs://``
needs fsspec's adapter for it (``pip install s3fs`` / ``gcsfs``); credentials are the adapter's own.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from featx.data.images import is_image_file
from featx.data.records import SPLIT_NAMES, SPLIT_ORDER
from featx.errors import DatasetError, FeatxError, MissingDependencyError, MissingFileError

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(data: object) -> bool:
    """Whether ``data`` is a URL (``scheme://...``) rather than a local path."""
    return isinstance(data, str) and bool(_URL.match(data))


class Url(str):
    """A dataset's root (or source) in an object store, which joins like a :class:`~pathlib.Path`."""

    def __new__(cls, url: str) -> Url:
        return super().__new__(cls, url.rstrip("/") if not url.endswith("://") else url)

    def __truediv__(self, other: object) -> Url:
        return Url(f"{self}/{str(other).lstrip('/')}")

    @property
    def name(self) -> str:
        return self.rsplit("/", 1)[-1] or self.split("://", 1)[0]

    @property
    def stem(self) -> str:
        return os.path.splitext(self.name)[0]

    def is_file(self) -> bool:
        return False


def filesystem(url: str):
    """The fsspec filesystem of ``url`` and the path inside it; one line when its adapter is missing."""
    try:
        import fsspec
    except ImportError:
        raise MissingDependencyError(f'{{param}} {url} is a URL, which needs fsspec: pip install fsspec',
                                     param="data") from None
    try:
        return fsspec.core.url_to_fs(url)
    except ImportError as exc:  # fsspec says which adapter: "Install s3fs to access S3"
        raise MissingDependencyError(f"{{param}} {url}: {exc}.", param="data") from None
    except ValueError as exc:
        raise MissingFileError(f"{{param}} {url} is not a URL featx can read ({exc}).", param="data") from None


def list_images(url: str) -> dict[str, tuple[int, int]]:
    """The image files under ``url``: their path relative to it (``/``-separated) and (size, mtime_ns)."""
    fs, root = filesystem(url)
    try:
        listing = fs.find(root, detail=True)
    except OSError as exc:
        raise FeatxError(f"cannot list {url}: {exc}") from None
    root = root.rstrip("/")
    found = {}
    for name, info in listing.items():
        relative = name[len(root):].lstrip("/") if name.startswith(root) else name
        if info.get("type", "file") == "file" and is_image_file(relative) \
                and not any(part.startswith(".") for part in relative.split("/")):
            found[relative] = (int(info.get("size") or 0), _mtime_ns(info))
    return found


def scan_url(url: str):
    """The :class:`~featx.data.records.Dataset` at ``url``: unlabelled, class folders or split folders."""
    from featx.data.records import Dataset, ImageRecord

    files = list_images(url)
    if not files:
        raise MissingFileError(f"{{param}}: no image files under {url}.", param="data")
    parts = {path: path.split("/") for path in files}
    depths = {len(p) for p in parts.values()}
    if depths == {1}:
        layout, classes = "unlabelled", ()
        records = [ImageRecord(path, -1, "") for path in files]
    elif depths == {2}:
        layout, classes = "classes", tuple(sorted({p[0] for p in parts.values()}))
        records = [ImageRecord(path, classes.index(p[0]), "") for path, p in parts.items()]
    elif depths == {3} and all(p[0].lower() in SPLIT_NAMES for p in parts.values()):
        layout, classes = "splits", tuple(sorted({p[1] for p in parts.values()}))
        records = [ImageRecord(path, classes.index(p[1]), SPLIT_NAMES[p[0].lower()]) for path, p in parts.items()]
    else:
        raise DatasetError(
            f"{{param}} {url} holds images at several depths; expected images directly under it, in class "
            "folders, or in train/val/test folders holding class folders.", param="data")
    records.sort(key=lambda r: (SPLIT_ORDER[r.split], r.path))
    root = Url(url)
    return Dataset(root, root, layout, classes, tuple(records))


def read_bytes(path: str | os.PathLike) -> bytes:
    """A file's bytes, from a local path or a URL."""
    if is_url(path):
        fs, inner = filesystem(str(path))
        return fs.cat_file(inner)
    with open(path, "rb") as handle:
        return handle.read()


def sha256_url(url: str) -> str:
    """The hex sha256 of the object at ``url``, streamed."""
    fs, inner = filesystem(url)
    digest = hashlib.sha256()
    with fs.open(inner, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def hash_urls(urls: Sequence[str], workers: int = 8) -> list[bytes | str]:
    """The content id of each URL (hex sha256 as bytes), or the reason it cannot be read; in threads."""
    from featx.errors import os_reason

    def one(url: str) -> bytes | str:
        try:
            return sha256_url(url).encode()
        except OSError as exc:
            return os_reason(exc)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, urls))


class ObjectFiles:
    """How :func:`featx.engine.fileindex.index_files` sees the files of a URL dataset: one listing for their
    stat, ``hash_many`` (default :func:`hash_urls`; the Ray engine hashes on its workers) for their ids."""

    def __init__(self, root: str, hash_many: Callable[[Sequence[str]], list[bytes | str]] | None = None,
                 workers: int = 8):
        self.root = Url(root)
        self.listing = list_images(root)
        self.hash_many = hash_many or (lambda urls: hash_urls(urls, workers))

    def stat(self, paths: Sequence[str]) -> list[tuple[int, int] | str]:
        return [self.listing.get(path, "file not found") for path in paths]

    def sha256(self, paths: Sequence[str]) -> list[bytes | str]:
        return self.hash_many([str(self.root / path) for path in paths]) if paths else []


def _mtime_ns(info: dict) -> int:
    """An object's modification time in ns from an fsspec listing (each store names it its own way);
    -1 when it has none, so that its bytes are hashed on every run."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "mtime_ns", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, datetime):
            return int(value.timestamp() * 1e9)
        if isinstance(value, str):
            try:
                return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1e9)
            except ValueError:
                continue
        if key == "mtime_ns":
            return int(value)
        return int(float(value) * 1e9)
    return -1
