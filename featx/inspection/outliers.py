"""Outliers: images that belong to no class of the dataset, a photo of a document among flowers.

Each class (data mostly unlabelled: each cluster of a k-means) is a Gaussian in the first principal
components of the unit vectors, all sharing one covariance (the within-class scatter, Ledoit-Wolf
shrunk). An image's distance to a class is its Mahalanobis distance to the class mean, and its score
is the smallest over the classes, in robust standard deviations (median, MAD) of every image's such
distance. Distances to the classes, not local density: foreign images that look alike cluster
together and are each other's near neighbours, yet remain far from every class (Lee et al., 2018).
A mislabelled image lies near its true class and scores low: it is a label issue, not an outlier.
What the components leave out counts too, at half weight: an image's distance from their space,
in robust spreads of every image's (an image of another kind may differ where the classes do not).

The defaults were chosen on real features (benchmarks/inspect_real.py: Fashion-MNIST through an
ImageNet EfficientNet-Lite0, handwritten digits and photo crops planted): 64 components, and a
cut-off of 3.5, which clean sets of 1,400 and 4,000 images reach with under 0.5 % of their images.
The half weight leaves those figures as they are and finds the images of another kind of the
synthetic benchmark's diffuse classes (benchmarks/inspect_dataset.py --noise 2.0), which the
components alone miss.
"""

from __future__ import annotations

import numpy as np

from featx.features.vectors import Features
from featx.inspection.duplicates import unit_rows
from featx.inspection.findings import Outlier, label_name

MIN_GROUP = 3  # images a class or cluster needs to have a centre
MAD_TO_SD = 1.4826  # MAD x this estimates the standard deviation of normal data
COMPONENTS = 64  # principal components the classes are modelled in
OFF_SPACE_WEIGHT = 0.5  # the distance outside those components counts at this weight (see the docstring)


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
    return names[(counts >= MIN_GROUP) & (counts < n)] if len(names) > 1 else names[counts >= MIN_GROUP]


def _components(Z: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``Z`` in its first COMPONENTS principal components (as is when already that narrow), and each
    row's distance from the space they span (what the components leave out)."""
    from sklearn.decomposition import PCA

    n_components = min(COMPONENTS, Z.shape[0] - 1, Z.shape[1])
    if n_components >= Z.shape[1] or n_components < 1:
        return Z.astype(np.float64), np.zeros(len(Z))
    pca = PCA(n_components, random_state=seed).fit(Z)
    P = pca.transform(Z)
    return P.astype(np.float64), np.linalg.norm(Z - pca.inverse_transform(P), axis=1).astype(np.float64)


def _distances(P: np.ndarray, group: np.ndarray, names: np.ndarray, fitted: np.ndarray) -> np.ndarray:
    """Every row's Mahalanobis distance to the nearest group, the groups' means and their shared
    (Ledoit-Wolf) covariance estimated on the ``fitted`` rows."""
    from sklearn.covariance import LedoitWolf

    means = np.stack([P[fitted & (group == g)].mean(axis=0) for g in names])
    residuals = P[fitted] - means[np.searchsorted(names, group[fitted])]
    precision = LedoitWolf().fit(residuals).precision_
    squared = np.full(len(P), np.inf)
    for mean in means:
        d = P - mean
        squared = np.minimum(squared, np.einsum("ij,jk,ik->i", d, precision, d))
    return np.sqrt(np.maximum(squared, 0.0))


def outlier_scores(features: Features, *, seed: int = 0) -> np.ndarray:
    """Every row's Mahalanobis distance to the nearest group, in robust spreads of all rows' distances;
    the groups are the classes when most images are labelled, else k-means clusters of all images."""
    Z = unit_rows(features.X)
    group = np.where(features.y >= 0, features.y, -1)
    names = _big_groups(group, len(Z)) if np.mean(features.y >= 0) >= 0.5 else np.zeros(0)
    if len(names) == 0:
        group = _clusters(Z, seed)
        names = _big_groups(group, len(Z))
    P, off_space = _components(Z, seed)
    scores = _robust_z(_distances(P, group, names, np.isin(group, names)))
    return np.maximum(scores, OFF_SPACE_WEIGHT * _robust_z(off_space)) if off_space.any() else scores


def _robust_z(distance: np.ndarray) -> np.ndarray:
    median = np.median(distance)
    spread = MAD_TO_SD * np.median(np.abs(distance - median))
    return (distance - median) / max(spread, 1e-6, 0.01 * median)


def find_outliers(features: Features, *, threshold: float = 3.5, seed: int = 0) -> tuple[list[Outlier], list[str]]:
    """The images scoring at least ``threshold``, most outlying first, and notes."""
    if len(features) < MIN_GROUP:
        return [], [f"no outliers: {len(features)} images are too few to say what is typical"]
    scores = outlier_scores(features, seed=seed)
    flagged = np.flatnonzero(scores >= threshold)
    flagged = flagged[np.argsort(-scores[flagged], kind="stable")]
    return [Outlier(int(r), str(features.paths[r]), label_name(features, int(features.y[r])), float(scores[r]))
            for r in flagged], []
