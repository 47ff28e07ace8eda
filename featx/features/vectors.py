"""Embedded images as NumPy arrays: what heads train on and what `featx.embed` returns."""

from __future__ import annotations

import copy
import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from featx._gc import gc_paused
from featx.cache.damage import unusable_vectors
from featx.cache.locate import VIEWS_SUFFIX
from featx.cache.schema import VIEWS_KIND
from featx.cache.segments import STORAGE_DTYPES
from featx.cache.store import CacheIndex, read_vectors, usable_rows, vector_rows
from featx.cache.tables import ImageTable, SkipTable
from featx.checks import check_path
from featx.config import EmbedConfig
from featx.data.records import SPLITS
from featx.errors import CacheError
from featx.features.reports import SkippedImage

if TYPE_CHECKING:
    from featx.features.reports import EmbedReport


class _Compact:
    """A column of text kept compact (a few bytes per row), decoded into a NumPy array of ``str`` on
    first read and kept: what :class:`Features` holds for ``paths`` and ``ids`` of a cache."""

    def __init__(self, raw: np.ndarray):
        self.raw, self._strings = raw, None

    def __len__(self) -> int:
        return len(self.raw)

    def strings(self) -> np.ndarray:
        if self._strings is None:
            self._strings = np.asarray([self.decode(v) for v in self.raw], dtype=object)
        return self._strings

    def at(self, rows) -> list[str]:
        """The strings of ``rows`` only (decoding nothing else)."""
        if self._strings is not None:
            return list(np.atleast_1d(self._strings[rows]))
        taken = self.raw[rows]
        return [self.decode(v) for v in ([taken] if isinstance(taken, (str, bytes)) else taken)]

    def take(self, rows) -> _Compact:
        taken = copy.copy(self)
        taken.raw = self.raw[rows]
        taken._strings = None if self._strings is None else self._strings[rows]
        return taken

    def decode(self, value) -> str:
        raise NotImplementedError


class _Ids(_Compact):
    """Content ids as their S64 column (64 bytes a row, not a 121-byte Python ``str``)."""

    def decode(self, value: bytes) -> str:
        return value.decode()


class _Paths(_Compact):
    """Paths as the cache stores them, relative to ``root`` (packed UTF-8), joined on read."""

    def __init__(self, root: str, relative):
        super().__init__(relative)
        self.root = root

    def decode(self, value: str) -> str:
        return os.path.join(self.root, value)


class _Column:
    """A field of :class:`Features` given as an array, or as a :class:`_Compact` column that reads as
    the array of ``str`` it decodes to (built on first read, then kept)."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            raise AttributeError(self.name)  # the dataclass field has no default
        value = obj.__dict__[self.name]
        return value.strings() if isinstance(value, _Compact) else value

    def __set__(self, obj, value) -> None:
        obj.__dict__[self.name] = value


@dataclass(frozen=True, eq=False)
class Features:
    """One row per embedded image file; rows were joined to vectors by content id.

    ``X`` (N×D float32) pairs with ``y`` (class index, -1 unlabelled), ``paths`` (absolute),
    ``ids`` (sha256 of the file), ``split`` ("train"/"val"/"test"/""), and ``classes`` names the
    labels. ``config`` is the backbone configuration and ``fingerprint`` its hash. ``report``
    (from :func:`featx.embed` only) says what the run did: embedded, reused, skipped.

    ``paths`` and ``ids`` are NumPy arrays of ``str``. Read from a cache, they are kept compact (the
    ids' 64-byte column, the cache's relative paths) and built on first access, so features that
    only train a head cost bytes per image beside their vectors.
    """

    X: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    paths: np.ndarray = _Column()
    ids: np.ndarray = _Column()
    split: np.ndarray
    config: dict = field(default_factory=dict)
    fingerprint: str = ""
    sources: dict = field(default_factory=dict)
    cache_path: Path | None = None
    skipped: tuple[SkippedImage, ...] = ()
    report: EmbedReport | None = None  # what the embed run that returned these features did

    def __len__(self) -> int:
        return len(self.X)

    @property
    def feature_dim(self) -> int:
        return int(self.X.shape[1])

    @property
    def has_splits(self) -> bool:
        return bool(np.any(self.split != ""))

    def subset(self, rows) -> Features:
        """The rows selected by a boolean mask or index array, same classes and configuration."""
        return self.replaced(X=self.X[rows], y=self.y[rows], paths=_rows(self.__dict__["paths"], rows),
                             ids=_rows(self.__dict__["ids"], rows), split=self.split[rows])

    def replaced(self, **changes) -> Features:
        """``dataclasses.replace(self, **changes)`` that keeps compact ``paths`` and ``ids`` compact."""
        return Features(**{**self.__dict__, **changes})

    def embed_config(self) -> EmbedConfig:
        """The backbone configuration that produced these vectors, ready to embed new images."""
        return EmbedConfig.from_record(self.config, self.sources, self.fingerprint)

    def where_split(self, name: str) -> Features:
        return self.subset(self.split == name)

    def __repr__(self) -> str:
        return (
            f"Features(n={len(self)}, dim={self.X.shape[1] if self.X.ndim == 2 else 0}, "
            f"classes={len(self.classes)}, backbone={self.config.get('backbone')!r})"
        )


def _rows(column, rows):
    return column.take(rows) if isinstance(column, _Compact) else column[rows]


def content_ids(features: Features) -> np.ndarray:
    """The content ids of ``features`` as a bytes column (S64 from a cache; UTF-8): what sorting and
    matching ids need, without a Python ``str`` per image. Sorts as ``features.ids`` sorts."""
    ids = features.__dict__["ids"]
    if isinstance(ids, _Ids):
        return ids.raw
    return np.asarray([str(i).encode() for i in ids], dtype=bytes) if len(ids) else np.zeros(0, "S64")


def paths_at(features: Features, rows) -> list[str]:
    """``features.paths[rows]`` as a list, decoding only those rows of a cache's compact paths."""
    paths = features.__dict__["paths"]
    return paths.at(rows) if isinstance(paths, _Compact) else [str(p) for p in np.atleast_1d(np.asarray(paths)[rows])]


def count_unusable(X: np.ndarray, block: int = 65536) -> int:
    """How many rows of ``X`` hold NaN, infinite or absurd values, checked a block at a time (the
    check's temporaries stay small whatever the size of ``X``)."""
    return sum(int((~usable_rows(X[start:start + block])).sum()) for start in range(0, len(X), block))


def split_column(split: np.ndarray) -> np.ndarray:
    """``split`` as an object array whose rows share one ``str`` per split name (8 bytes a row)."""
    split = np.asarray(split, dtype=object)
    out = split.copy()
    for name in ("", *SPLITS):
        out[split == name] = name
    return out


class LazyVectors:
    """The vectors of some cache rows, read only when asked: ``X[rows]`` is another LazyVectors,
    ``np.asarray(X)`` reads them all, :meth:`batches` reads ``size`` rows at a time (memory holds
    one batch, so a cache bigger than RAM still opens and streams)."""

    def __init__(self, index: CacheIndex, rows: np.ndarray, dtype: str = "float32"):
        self._index, self._rows, self.dtype = index, np.asarray(rows, np.int64), np.dtype(dtype)
        self.shape = (len(self._rows), int(index.attrs.get("feature_dim", 0)))
        self.ndim = 2

    def __len__(self) -> int:
        return len(self._rows)

    @property
    def nbytes(self) -> int:
        """What reading them all would take in memory."""
        return self.shape[0] * self.shape[1] * self.dtype.itemsize

    def __getitem__(self, key) -> LazyVectors | np.ndarray:
        if isinstance(key, (int, np.integer)):
            return read_vectors(self._index, self._rows[[key]], str(self.dtype))[0]
        return LazyVectors(self._index, self._rows[key], str(self.dtype))

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return read_vectors(self._index, self._rows, str(dtype or self.dtype))

    def batches(self, size: int = 8192):
        """The vectors in order, ``size`` rows at a time."""
        for start in range(0, len(self._rows), size):
            yield read_vectors(self._index, self._rows[start : start + size], str(self.dtype))


@gc_paused()
def load_features(cache: str | os.PathLike, *, dtype: str = "float32", lazy: bool = False) -> Features:
    """Read a feature cache back: every embedded image file, joined to its vector by content id.

    ``X`` is float32 whatever the cache stores, unless ``dtype`` asks for another (``"float16"``).
    With ``lazy`` it is a :class:`LazyVectors` that reads rows when asked (the finiteness check is
    then left to the rows' reader: each segment's rows were checked when it was written).
    """
    from featx.checks import check_choice

    check_path("cache", cache)
    check_choice("dtype", dtype, STORAGE_DTYPES)
    index = CacheIndex.read(cache, packed_paths=True, hashed_ids=True)
    if index.attrs.get("kind") == VIEWS_KIND:  # its rows are views: as features, an image's views are "duplicates"
        plain = Path(cache).parent.name.removesuffix(VIEWS_SUFFIX)
        raise CacheError(f"{cache} holds augmented views of the cache {plain}; give that cache (a head takes its "
                         "views with views=True).", param="cache")
    root = str(index.attrs.get("root", ""))  # a folder, or a URL (which a Path would mangle)
    rows = vector_rows(index)
    present = rows >= 0
    keep = slice(None) if present.all() else present  # no copy of the columns when every image has its vector
    skipped = tuple(
        SkippedImage(os.path.join(root, p), r) for p, r in zip(index.skipped.path, index.skipped.reason)
    )
    images = index.images
    label, path, ids, split = images.label[keep], images.path[keep], images.id[keep], split_column(images.split[keep])
    # what reading vectors needs: not the image table (its other columns go before the vectors come)
    del images
    index = replace(index, images=ImageTable.empty(), skipped=SkipTable.empty())
    if lazy:
        X = LazyVectors(index, rows[keep], dtype)
    else:
        X = read_vectors(index, rows[keep], dtype)
        bad = count_unusable(X)
        if bad:  # never train on them: a rerun of the embed re-embeds such vectors
            raise unusable_vectors(cache, bad)
    return Features(
        X=X,
        y=label.astype(np.int64),
        classes=tuple(index.classes),
        paths=_Paths(root, path),
        ids=_Ids(ids),
        split=split,
        config=index.config,
        fingerprint=index.fingerprint,
        sources=json.loads(str(index.attrs.get("sources", "{}"))),
        cache_path=Path(cache),
        skipped=skipped,
    )
