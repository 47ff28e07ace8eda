"""Embedded images as NumPy arrays: what heads train on and what `featx.embed` returns."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from featx.cache.locate import VIEWS_SUFFIX
from featx.cache.schema import VIEWS_KIND
from featx.cache.segments import STORAGE_DTYPES
from featx.cache.store import CacheIndex, read_vectors, unusable_vectors, usable_rows
from featx.cache.tables import rows_of
from featx.checks import check_path
from featx.config import EmbedConfig
from featx.errors import CacheError
from featx.features.reports import SkippedImage

if TYPE_CHECKING:
    from featx.features.reports import EmbedReport


@dataclass(frozen=True, eq=False)
class Features:
    """One row per embedded image file; rows were joined to vectors by content id.

    ``X`` (N×D float32) pairs with ``y`` (class index, -1 unlabelled), ``paths`` (absolute),
    ``ids`` (sha256 of the file), ``split`` ("train"/"val"/"test"/""), and ``classes`` names the
    labels. ``config`` is the backbone configuration and ``fingerprint`` its hash. ``report``
    (from :func:`featx.embed` only) says what the run did: embedded, reused, skipped.
    """

    X: np.ndarray
    y: np.ndarray
    classes: tuple[str, ...]
    paths: np.ndarray
    ids: np.ndarray
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
        return replace(
            self, X=self.X[rows], y=self.y[rows], paths=self.paths[rows], ids=self.ids[rows], split=self.split[rows]
        )

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


def load_features(cache: str | os.PathLike, *, dtype: str = "float32", lazy: bool = False) -> Features:
    """Read a feature cache back: every embedded image file, joined to its vector by content id.

    ``X`` is float32 whatever the cache stores, unless ``dtype`` asks for another (``"float16"``).
    With ``lazy`` it is a :class:`LazyVectors` that reads rows when asked (the finiteness check is
    then left to the rows' reader: each segment's rows were checked when it was written).
    """
    from featx.checks import check_choice

    check_path("cache", cache)
    check_choice("dtype", dtype, STORAGE_DTYPES)
    index = CacheIndex.read(cache)
    if index.attrs.get("kind") == VIEWS_KIND:  # its rows are views: as features, an image's views are "duplicates"
        plain = Path(cache).parent.name.removesuffix(VIEWS_SUFFIX)
        raise CacheError(f"{cache} holds augmented views of the cache {plain}; give that cache (a head takes its "
                         "views with views=True).", param="cache")
    root = str(index.attrs.get("root", ""))  # a folder, or a URL (which a Path would mangle)
    images = index.images
    rows = rows_of(index.vector_ids, images.id)
    present = rows >= 0
    images = images.take(present)
    X = LazyVectors(index, rows[present], dtype) if lazy else read_vectors(index, rows[present], dtype)
    bad = 0 if lazy else int((~usable_rows(X)).sum())
    if bad:  # never train on them: a rerun of the embed re-embeds such vectors
        raise unusable_vectors(cache, bad)
    paths = np.asarray([os.path.join(root, p) for p in images.path], dtype=object)
    skipped = tuple(
        SkippedImage(os.path.join(root, p), r) for p, r in zip(index.skipped.path, index.skipped.reason)
    )
    return Features(
        X=X,
        y=images.label.astype(np.int64),
        classes=tuple(index.classes),
        paths=paths,
        ids=np.asarray([i.decode() for i in images.id], dtype=object),
        split=np.asarray(images.split, dtype=object),
        config=index.config,
        fingerprint=index.fingerprint,
        sources=json.loads(str(index.attrs.get("sources", "{}"))),
        cache_path=Path(cache),
        skipped=skipped,
    )
