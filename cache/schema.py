"""The versioned layout of a featx feature cache (HDF5) and the checks made on every read.

Layout, version 3 (all strings UTF-8). A cache is an index file ``<name>.h5`` plus a folder of
immutable files ``<name>.h5.segments/``: segments ``<uuid>.h5`` that hold the vectors, and parts
``images-<uuid>.h5`` that hold the rows of the image table. The index holds no per-image data of
its own, so a commit that adds images writes their rows and a few runs, never the old rows again:

    /                     attrs: encoding-type="featx-feature-cache", encoding-version=3,
                                 fingerprint, config (JSON of the backbone configuration),
                                 dataset (the DATA path), layout, feature_dim, dtype (how vectors
                                 are stored: float32 | float16), featx/keras/tensorflow versions, updated
    /classes              (C,)   class names, sorted; a label is an index into it
    /segments/name, rows, size, mtime_ns, digest, attrs   one row per segment file, in order:
                                 its stat when committed, sha256 of its ids + vector bytes, and the
                                 JSON of its attributes (fingerprint, and whatever else wrote it)
    /vectors/id           (M,)   sha256 of an image file's bytes, one row per distinct content, in
                                 segment order: a virtual dataset over the segments' /id
    /vectors/features     (M, D) a virtual dataset over the segments' /features: plain h5py reads
                                 it as one array (a missing segment reads as NaN)
    /parts/name, rows, size, mtime_ns, digest   one row per part file of the image table
    /runs/part, start, length    the image table in order: rows start:start+length of that part
    /images/path          (N,)   path relative to the dataset root, one row per image file
    /images/id            (N,)   content id of that file, joined to /vectors/id (never by order)
    /images/label         (N,)   int32 class index, -1 when unlabelled
    /images/split         (N,)   "train" | "val" | "test" | ""
    /images/size, mtime_ns (N,)  int64 file size and modification time, to skip rehashing
                                 (every /images column: a virtual dataset over the parts, by /runs)
    /skipped/path, id, reason    files that could not be embedded, and why (small: kept in the index)

Version 2 kept /vectors/id and the /images columns in the index file itself (rewritten whole by
every commit); it is read as it is, and the next commit that changes it writes version 3.

A views cache (``<name>.h5.views/<recipe>--<fingerprint>.h5``, featx.engine.views) has this same layout,
with attrs kind="views", views_of (the plain fingerprint), views (per image) and augment; its config
is the recipe's, its /images rows are (image, view number) pairs whose id is the view id.

A segment file: attrs encoding-type="featx-feature-segment", fingerprint; /id (R,) and /features
(R, D) in the cache's dtype, chunked. A part file: the same encoding-type, holds="images", and the
/images columns of its rows (``featx.cache.parts``). Version 1 kept /vectors/features (float32) in the index file
itself; it is read as one segment and the next embed moves it into one (the upgrade).

Every group carries encoding-type/encoding-version attributes as well. Datasets of fixed-size
types (ids, vectors, numbers) carry HDF5's per-chunk Fletcher-32 checksum, which HDF5 checks on
every read: a flipped bit fails the read (:func:`read`) instead of giving a slightly wrong value.
Variable-length strings cannot carry HDF5 filters. Caches of older featx have no checksums and are
read as they are.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import h5py
import numpy as np

from featx.errors import CacheError, CacheNotFoundError, CacheWriteError

ENCODING_TYPE = "featx-feature-cache"
ENCODING_VERSION = 3
READABLE_VERSIONS = (1, 2, 3)  # v1 (vectors inside this file) is read, and upgraded by the next embed
GROUPS = ("vectors", "images", "skipped")
VIEWS_KIND = "views"  # the ``kind`` attribute of a views cache (a plain cache has none)


def stamp(node: h5py.Group, encoding_type: str = ENCODING_TYPE) -> None:
    """Mark a file or group with the schema's encoding attributes."""
    node.attrs["encoding-type"] = encoding_type
    node.attrs["encoding-version"] = ENCODING_VERSION


def check_schema(h5: h5py.File, path: str | os.PathLike) -> None:
    """Raise :class:`CacheError` unless ``h5`` is a featx cache this version can read."""
    kind = h5.attrs.get("encoding-type")
    if isinstance(kind, bytes):
        kind = kind.decode()
    if kind != ENCODING_TYPE:
        raise CacheError(
            f"{path} is not a featx cache (an HDF5 file of another kind). "
            "Give a file written by 'featx embed'."
        )
    try:
        version = int(h5.attrs.get("encoding-version", -1))
    except (TypeError, ValueError):
        raise CacheError(f"{path} is a damaged featx cache (its encoding-version "
                         f"{h5.attrs.get('encoding-version')!r} is not a number). Delete it and re-run 'featx embed'.") from None
    if version not in READABLE_VERSIONS:
        newer = version > ENCODING_VERSION
        raise CacheError(
            f"{path} was written by cache schema v{version}; this featx reads v1 to v{ENCODING_VERSION}. "
            + ("Upgrade featx (pip install -U featx)." if newer else "Re-run 'featx embed' to rebuild it.")
        )
    try:
        missing = [g for g in GROUPS + (("segments",) if version >= 2 else ()) + ("classes",) if g not in h5]
    except (RuntimeError, KeyError) as exc:  # HDF5's own structures damaged
        raise CacheError(f"{path} is a damaged featx cache ({' '.join(str(exc).split())[:200]}). "
                         "Delete it and re-run 'featx embed'.") from None
    if missing:
        raise CacheError(
            f"{path} is a damaged featx cache (missing {', '.join(missing) or 'classes'}). "
            "Delete it and re-run 'featx embed'."
        )


@contextlib.contextmanager
def open_cache(path: str | os.PathLike) -> Iterator[h5py.File]:
    """Open a committed cache read-only after checking its schema; bad files raise CacheError."""
    if not os.path.exists(path):
        raise CacheNotFoundError(f"No feature cache at {path}. Run 'featx embed' first, or check the cache path.")
    if os.path.isdir(path):
        raise CacheError(f"{path} is a folder; give a .h5 cache file in it.")
    try:
        h5 = h5py.File(path, "r")
    except OSError as exc:
        raise CacheError(
            f"{path} is not a readable featx cache (not HDF5, truncated or damaged: {exc}). "
            "Delete it and re-run 'featx embed'."
        ) from exc
    with h5:
        check_schema(h5, path)
        yield h5


@contextlib.contextmanager
def write_errors(where: str | os.PathLike) -> Iterator[None]:
    """Turn a failed write (disk full, permissions, I/O error) into one clear CacheError."""
    try:
        yield
    except (OSError, RuntimeError) as exc:
        if isinstance(exc, RuntimeError) and "write failed" not in str(exc):  # HDF5's own, after ENOSPC/EIO
            raise
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
        if "errno = 28" in reason:
            reason = "No space left on device"
        raise CacheWriteError(
            f"Could not write the feature cache in {where} ({reason}); the committed cache is "
            "unchanged. Free disk space or fix permissions, then rerun to continue."
        ) from exc


def checksum_options(dtype) -> dict[str, object]:
    """``create_dataset`` options that add a per-chunk checksum where HDF5 allows one."""
    if np.dtype(dtype).kind == "O":
        return {}  # variable-length strings: HDF5 cannot filter them
    return {"fletcher32": True}


def read(dataset: h5py.Dataset, selection=(), *, text: bool = True) -> np.ndarray:
    """``dataset[selection]`` (strings as ``str``; as ``bytes`` unless ``text``); a damaged chunk raises
    one clear CacheError."""
    try:
        if dataset.dtype.kind == "O" and text:
            return dataset.asstr()[selection]
        return dataset[selection]
    except OSError as exc:
        raise CacheError(
            f"{dataset.file.filename} is damaged (checksum mismatch in {dataset.name}); "
            "delete it and re-run 'featx embed'."
        ) from exc


def has_checksums(dataset: h5py.Dataset) -> bool:
    """Whether HDF5 checks ``dataset`` on read (caches of older featx have no checksums)."""
    return bool(dataset.fletcher32)


def is_featx_file(path: str | os.PathLike, kind: str) -> bool:
    """Whether ``path`` is a featx HDF5 file of ``kind`` (its encoding-type), even a damaged one:
    read by h5py, or else found near the start of a file that begins with HDF5's signature (featx
    writes the mark first, so a truncated cache still carries it)."""
    try:
        with h5py.File(path, "r") as h5:
            mark = h5.attrs.get("encoding-type")
        return (mark.decode() if isinstance(mark, bytes) else mark) == kind
    except (OSError, KeyError, RuntimeError, ValueError):  # not HDF5, or damaged
        pass
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
    except OSError:
        return False
    return head.startswith(_HDF5_SIGNATURE) and kind.encode() in head


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
