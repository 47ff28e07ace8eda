"""Reading and atomically rewriting a committed cache file.

A committed cache is only ever replaced whole: the new content goes to a temporary file in the same
folder, is flushed to disk, then renamed over the old one, so a crash at any moment leaves either
the old or the new file, never a half-written one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from featx._faults import crash_point
from featx.cache.schema import checksum_options, open_cache, read, stamp, write_errors
from featx.cache.tables import ID_DTYPE, STR, ImageTable, SkipTable

CHUNK_ROWS = 256
MAX_MAGNITUDE = 1e30  # no backbone output comes near: a larger value is damage, not a feature


def usable_rows(features: np.ndarray) -> np.ndarray:
    """Which rows of a (n, D) block are vectors a backbone could have produced: finite, not absurd."""
    with np.errstate(invalid="ignore"):
        return (np.abs(features) <= MAX_MAGNITUDE).all(axis=1)  # NaN compares False


def usable_block(features, feature_dim: int) -> bool:
    """Whether a stored vector dataset has the expected width and dtype (float32)."""
    return features.ndim == 2 and features.shape[1] == feature_dim and features.dtype == np.float32


@dataclass
class CacheIndex:
    """Everything in a committed cache except the vectors themselves."""

    attrs: dict[str, object]
    classes: list[str]
    images: ImageTable
    skipped: SkipTable
    vector_ids: np.ndarray  # S64, row order of /vectors/features
    path: Path | None = None
    config: dict[str, object] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str:
        return str(self.attrs.get("fingerprint", ""))

    @classmethod
    def read(cls, path: str | os.PathLike) -> "CacheIndex":
        with open_cache(path) as h5:
            attrs = {key: _plain(value) for key, value in h5.attrs.items()}
            return cls(
                attrs=attrs,
                classes=list(read(h5["classes"])),
                images=ImageTable.read(h5["images"]),
                skipped=SkipTable.read(h5["skipped"]),
                vector_ids=read(h5["vectors/id"]).astype(ID_DTYPE),
                path=Path(path),
                config=json.loads(attrs.get("config", "{}")),
            )


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_vectors(path: str | os.PathLike, rows: np.ndarray) -> np.ndarray:
    """The feature rows at ``rows`` (any order, repeats allowed) of a committed cache."""
    with open_cache(path) as h5:
        features = h5["vectors/features"]
        if len(rows) == 0:
            return np.zeros((0, features.shape[1]), np.float32)
        unique, inverse = np.unique(rows, return_inverse=True)
        if len(unique) > len(features) // 2:
            return read(features)[rows]
        return read(features, unique)[inverse]


VectorChunks = Iterable[tuple[np.ndarray, np.ndarray]]  # (ids S64, features float32)


def write_cache(
    path: str | os.PathLike,
    *,
    attrs: dict[str, object],
    classes: list[str],
    images: ImageTable,
    skipped: SkipTable,
    vectors: VectorChunks,
    feature_dim: int,
) -> int:
    """Write a complete cache to a temporary file and rename it over ``path``; returns the rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with write_errors(path.parent), h5py.File(tmp, "w") as h5:
            stamp(h5)
            for key, value in attrs.items():
                h5.attrs[key] = value
            h5.create_dataset("classes", data=np.asarray(classes, dtype=object), dtype=STR)
            group = h5.create_group("vectors")
            stamp(group)
            rows = _write_vectors(group, vectors, feature_dim)
            for name, table in (("images", images), ("skipped", skipped)):
                group = h5.create_group(name)
                stamp(group)
                table.write(group)
        with write_errors(path.parent):
            _fsync(tmp)
            crash_point("consolidate-written")
            os.replace(tmp, path)
            _fsync_dir(path.parent)
    finally:
        if tmp.exists():
            tmp.unlink()
    return rows


def _write_vectors(group: h5py.Group, chunks: VectorChunks, feature_dim: int) -> int:
    if feature_dim < 1:
        raise ValueError(f"feature_dim must be positive to write vectors; got {feature_dim}.")
    ids = group.create_dataset("id", shape=(0,), maxshape=(None,), dtype=ID_DTYPE, chunks=(4096,),
                               **checksum_options(ID_DTYPE))
    features = group.create_dataset(
        "features",
        shape=(0, feature_dim),
        maxshape=(None, feature_dim),
        dtype=np.float32,
        chunks=(CHUNK_ROWS, feature_dim),
        **checksum_options(np.float32),
    )
    rows = 0
    for chunk_ids, chunk_features in chunks:
        count = len(chunk_ids)
        if count == 0:
            continue
        ids.resize((rows + count,))
        features.resize((rows + count, feature_dim))
        ids[rows:] = chunk_ids
        features[rows:] = chunk_features
        rows += count
        crash_point("consolidate-writing")
    return rows


def iter_cache_vectors(path: str | os.PathLike) -> VectorChunks:
    """Stream a committed cache's usable (ids, features) in blocks.

    Vectors of the wrong width or dtype, non-finite or absurd ones (:func:`usable_rows`) are left
    out: to a rerun they are not embedded, so it embeds them again. A damaged chunk raises CacheError.
    """
    with open_cache(path) as h5:
        ids = h5["vectors/id"]
        features = h5["vectors/features"]
        if not usable_block(features, int(h5.attrs.get("feature_dim", -1))) or len(features) != len(ids):
            return
        block = CHUNK_ROWS * 16
        for start in range(0, len(ids), block):
            stop = min(start + block, len(ids))
            chunk = read(features, np.s_[start:stop])
            keep = usable_rows(chunk)
            yield read(ids, np.s_[start:stop]).astype(ID_DTYPE)[keep], chunk[keep]


def remove_stale_temporaries(cache_path: str | os.PathLike) -> None:
    """Delete temporary files that killed runs left beside the cache (call under the lock)."""
    from featx.cache.shards import shard_dir

    cache_path = Path(cache_path)
    stale = list(cache_path.parent.glob(f".{cache_path.name}.*.tmp"))
    folder = shard_dir(cache_path)
    if folder.is_dir():
        stale += list(folder.glob(".*.tmp"))
    for path in stale:
        path.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    with open(path, "rb+") as handle:
        os.fsync(handle.fileno())


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
