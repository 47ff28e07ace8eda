"""Outliers: images far from every class of the dataset, a photo of a document among flowers.

Each class (data mostly unlabelled: each cluster of a k-means) has a centre, the mean direction of its
vectors. An image's distance to a centre (1 - cosine similarity) is measured in that group's own
terms, as a robust z-score against the distances of the group's members (median, MAD); its score
is the smallest over all groups. A mislabelled image sits close to the centre of its true class
and scores low (it is a label issue, not an outlier); only what belongs to no group scores high.
"""

from __future__ import annotations

import numpy as np

from featx.features.vectors import Features
from featx.inspection.duplicates import unit_rows
from featx.inspection.findings import Outlier, label_name

MIN_GROUP = 3  # images a class or cluster needs to have a centre
MAD_TO_SD = 1.4826  # MAD x this estimates the standard deviation of normal data


def _clusters(Z: np.ndarray, seed: int) -> np.ndarray:
    """A k-means cluster per row (about sqrt(N / 20) clusters, 1 to 20): groups for unlabelled data."""
    from sklearn.cluster import KMeans

    clusters = int(np.clip(round(np.sqrt(len(Z) / 20)), 1, 20))
    if clusters == 1 or len(Z) < clusters * MIN_GROUP:
        return np.zeros(len(Z), np.int64)
    return KMeans(clusters, n_init=1, random_state=seed).fit_predict(Z).astype(np.int64)


def _big_groups(group: np.ndarray, n: int) -> np.ndarray:
    """The groups with enough members to say what is typical of them. Tiny groups are skipped: a
    cluster of a few outliers would otherwise vouch for its own members."""
    names, counts = np.unique(group[group >= 0], return_counts=True)
    return names[counts >= max(MIN_GROUP, int(0.01 * n))]


def outlier_scores(features: Features, *, seed: int = 0) -> np.ndarray:
    """Every row's robust distance, in spreads of that group, to the nearest group centre; the
    groups are the classes when most images are labelled, else k-means clusters of all images."""
    Z = unit_rows(features.X)
    group = np.where(features.y >= 0, features.y, -1)
    names = _big_groups(group, len(Z)) if np.mean(features.y >= 0) >= 0.5 else np.zeros(0)
    if len(names) == 0:
        group = _clusters(Z, seed)
        names = _big_groups(group, len(Z))
    centres = unit_rows(np.stack([Z[group == g].mean(axis=0) for g in names]))
    distance = 1.0 - Z @ centres.T  # N x groups
    z = np.empty_like(distance)
    for column, g in enumerate(names):
        own = distance[group == g, column]
        median = np.median(own)
        spread = MAD_TO_SD * np.median(np.abs(own - median))
        z[:, column] = (distance[:, column] - median) / max(spread, 1e-6, 0.01 * median)
    return z.min(axis=1)


def find_outliers(features: Features, *, threshold: float = 4.0, seed: int = 0) -> tuple[list[Outlier], list[str]]:
    """The images scoring at least ``threshold``, most outlying first, and notes."""
    if len(features) < MIN_GROUP:
        return [], [f"no outliers: {len(features)} images are too few to say what is typical"]
    scores = outlier_scores(features, seed=seed)
    flagged = np.flatnonzero(scores >= threshold)
    flagged = flagged[np.argsort(-scores[flagged], kind="stable")]
    return [Outlier(int(r), str(features.paths[r]), label_name(features, int(features.y[r])), float(scores[r]))
            for r in flagged], []
