"""Which cached rows a head trains, validates and is tested on.

The cache's own train/val/test split is used when the data had one; otherwise a stratified
hold-out. Hold-outs are drawn over the labelled rows sorted by content id, so the same images
get the same split in any cache of any backbone, whatever the row order. Unlabelled rows
(``y == -1``) are never used.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from featx.data.records import SPLITS
from featx.errors import FeatxError, OptionError, OptionTypeError
from featx.features.vectors import Features, content_ids


def stratified_holdout(y: np.ndarray, size: float, seed: int) -> tuple[np.ndarray, np.ndarray] | None:
    """Sorted positions ``(kept, held_out)`` with ``size`` of every class held out, or None.

    None when it cannot be stratified: a class with a single row, or fewer rows on either side
    than there are classes.
    """
    from sklearn.model_selection import train_test_split

    y = np.asarray(y)
    classes, counts = np.unique(y, return_counts=True)
    n_held = math.ceil(size * len(y))
    if len(y) == 0 or counts.min() < 2 or n_held < len(classes) or len(y) - n_held < len(classes):
        return None
    kept, held = train_test_split(np.arange(len(y)), test_size=n_held, stratify=y, random_state=seed)
    return np.sort(kept), np.sort(held)


@dataclass(frozen=True)
class Split:
    """Row indices into a Features per split, and how they were chosen."""

    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    method: str  # "cache", "cache+holdout" (no test split in the cache) or "holdout"
    test_size: float
    seed: int
    unused: int = 0  # labelled rows left out: no split in a cache that has splits

    def rows(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def record(self, features: Features) -> dict:
        """The split as stored with a head: content ids per split, and how it was made."""
        ids = content_ids(features)
        return {
            "method": self.method,
            "test_size": self.test_size,
            "seed": self.seed,
            **{name: [i.decode() for i in ids[self.rows(name)]] for name in SPLITS},
        }


def check_test_size(test_size: object) -> None:
    """Refuse, naming ``test_size``, a value that is not a share from 0 (no test split) to below 1."""
    if isinstance(test_size, (bool, np.bool_)) or not isinstance(test_size, numbers.Real):
        raise OptionTypeError(f"{{param}} must be a number from 0 to below 1; got {type(test_size).__name__} "
                              f"{test_size!r:.60}.", param="test_size")
    if not 0.0 <= test_size < 1.0:
        raise OptionError(f"{{param}} must be at least 0 and below 1; got {test_size}.", param="test_size")


def split_features(features: Features, *, test_size: float = 0.2, seed: int = 0,
                   val_fraction: float | None = None) -> Split:
    """Train/val/test rows of the labelled images in ``features``.

    ``val_fraction`` (for heads that validate while training) carves a stratified validation set
    out of train when the cache has no val split; it stays empty when that is impossible.
    """
    check_test_size(test_size)
    labelled = np.flatnonzero(features.y >= 0)
    if len(labelled) == 0:
        where = features.cache_path or "these features"
        raise FeatxError(f"{where} has no labelled images; a head needs class folders or a label column.")
    if features.has_splits:
        split = features.split
        train, val, test = (labelled[split[labelled] == name] for name in SPLITS)
        unused = len(labelled) - len(train) - len(val) - len(test)
        if len(train) == 0:
            raise FeatxError(f"{features.cache_path} has a split but no labelled 'train' images to fit on.")
        method = "cache"
        if len(test) == 0 and test_size > 0:
            train, test = _holdout(features, train, test_size, seed, "test_size")
            method = "cache+holdout"
    else:
        train, val, test, unused, method = labelled, labelled[:0], labelled[:0], 0, "holdout"
        if test_size > 0:
            train, test = _holdout(features, labelled, test_size, seed, "test_size")
    if val_fraction and len(val) == 0:
        held = _holdout(features, train, val_fraction, seed, "validation_fraction", required=False)
        if held is not None:
            train, val = held
    return Split(train, val, test, method, test_size, seed, unused)


def _holdout(features: Features, rows: np.ndarray, size: float, seed: int, param: str,
             required: bool = True) -> tuple[np.ndarray, np.ndarray] | None:
    """Split ``rows`` stratified by class, drawn in content-id order; ``param`` sets ``size``."""
    rows = rows[np.argsort(content_ids(features)[rows], kind="stable")]
    held = stratified_holdout(features.y[rows], size, seed)
    if held is None:
        if not required:
            return None
        counts = {features.classes[c]: int(n) for c, n in zip(*np.unique(features.y[rows], return_counts=True))}
        raise FeatxError(
            f"cannot hold out a stratified share of {size} of {len(rows)} labelled images "
            f"(per class: {counts}); every class needs 2 images and each side one per class. "
            "Add images, change {param}, or give the data train/test split folders.", param=param
        )
    kept, out = held
    return np.sort(rows[kept]), np.sort(rows[out])
