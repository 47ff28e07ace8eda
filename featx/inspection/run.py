"""``featx.inspect``: every check on one set of cached vectors, in seconds, no backbone needed."""

from __future__ import annotations

import os
import time

import numpy as np

from featx.errors import OptionError, OptionTypeError
from featx.features.vectors import Features, load_features
from featx.inspection.duplicates import find_duplicates
from featx.inspection.findings import Inspection
from featx.inspection.labels import find_label_issues
from featx.inspection.outliers import find_outliers


def inspect(features: Features | str | os.PathLike, *, threshold: float = 0.88, outlier_threshold: float = 3.5,
            folds: int = 5, seed: int = 0) -> Inspection:
    """Find likely label errors, exact and near duplicates (leaks across splits, conflicting
    labels) and outliers in cached vectors: a :class:`Features` or a cache file.

    ``threshold`` is the cosine similarity of the cached vectors from which two images may be
    near-duplicates (they must also stand out from their neighbourhoods: see
    :mod:`featx.inspection.duplicates`); ``outlier_threshold`` the score from which an image is an
    outlier; ``folds`` the cross-validation folds that score the labels; ``seed`` fixes folds, PCA
    and clusters. The defaults were chosen on real features (``benchmarks/inspect_real.py``).
    """
    if not 0.0 < threshold <= 1.0:
        raise OptionError(f"{{param}} must be a cosine similarity above 0 and at most 1; got {threshold}.",
                          param="threshold")
    if not outlier_threshold > 0:
        raise OptionError(f"{{param}} must be above 0; got {outlier_threshold}.", param="outlier_threshold")
    if isinstance(folds, bool) or not isinstance(folds, int):
        raise OptionTypeError(f"{{param}} must be an integer; got {folds!r:.60}.", param="folds")
    if folds < 2:
        raise OptionError(f"{{param}} must be at least 2; got {folds}.", param="folds")
    if not isinstance(features, Features):
        features = load_features(features)
    fold_notes = _check_folds(features, folds)
    clock = [time.perf_counter()]

    def lap() -> float:
        clock.append(time.perf_counter())
        return round(clock[-1] - clock[-2], 3)

    label_issues, label_notes, accuracy = find_label_issues(features, folds=folds, seed=seed)
    timings = {"label_issues": lap()}
    duplicates = find_duplicates(features, threshold=threshold)
    timings["duplicates"] = lap()
    outliers, outlier_notes = find_outliers(features, threshold=outlier_threshold, seed=seed)
    timings["outliers"] = lap()
    return Inspection(
        features=features, label_issues=tuple(label_issues), duplicates=tuple(duplicates),
        outliers=tuple(outliers), notes=tuple(fold_notes + label_notes + outlier_notes),
        params={"threshold": threshold, "outlier_threshold": outlier_threshold, "folds": folds, "seed": seed},
        seconds=clock[-1] - clock[0], timings=timings, label_accuracy=accuracy,
    )


def _check_folds(features: Features, folds: int) -> list[str]:
    """Refuse more ``folds`` than any class has labelled images; note when the smallest class lowers them
    (every class with two or more labelled images is split ``folds`` ways)."""
    labels = features.y[features.y >= 0]
    counts = np.unique(labels, return_counts=True)[1]
    counts = counts[counts >= 2]
    if len(counts) < 2:
        return []  # label issues are not checked at all: find_label_issues says why
    if folds > counts.max():
        raise OptionError(f"{{param}} {folds} is more folds than any class has labelled images (the largest has "
                          f"{counts.max()}, the smallest {counts.min()}); give at most {counts.min()}.", param="folds")
    if folds > counts.min():
        return [f"label issues scored with {counts.min()} folds, not {folds}: the smallest class checked has "
                f"{counts.min()} labelled images"]
    return []
