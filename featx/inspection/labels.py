"""Likely label errors: where a cross-validated head disbelieves the label an image carries.

Each labelled image is scored by a model that never saw it (stratified K-fold, out-of-fold
probabilities of the ``logreg`` head on the vectors reduced by PCA, which sees no labels). An
image is an issue when another class is more probable than its label, and either that class is
as probable as is typical for its own images (confident learning's per-class threshold, Northcutt
et al., 2021, which adapts to classes the model finds hard) or the label is less probable than
the model's typical doubt about that class. Ranked by the margin: p(suggested) - p(given).
"""

from __future__ import annotations

import numpy as np

from featx.features.vectors import Features
from featx.inspection.findings import LabelIssue

PCA_DIMENSIONS = 128  # enough for a linear head on backbone vectors, and a 10x faster fit
WEAK_AGREEMENT = 0.6  # below this out-of-fold accuracy, a note says the label issues are unreliable


def reduce(X: np.ndarray, dimensions: int, seed: int) -> np.ndarray:
    """``X`` projected on its first principal components (as is when already that narrow)."""
    from sklearn.decomposition import PCA

    n_components = min(dimensions, X.shape[0] - 1, X.shape[1])
    if n_components >= X.shape[1] or n_components < 1:
        return X
    return PCA(n_components, svd_solver="randomized", random_state=seed).fit_transform(X)


def out_of_fold_proba(X: np.ndarray, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Probabilities (columns: the sorted classes of ``y``) each from a fold that held the row out."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from threadpoolctl import threadpool_limits

    from featx.heads.registry import make_head

    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    # L-BFGS's many small matrix products run 10-30x slower when BLAS spreads each over threads.
    with threadpool_limits(1, user_api="blas"):
        return cross_val_predict(make_head("logreg", random_state=seed), X, y, cv=cv, method="predict_proba")


def find_label_issues(features: Features, *, folds: int = 5, seed: int = 0) -> tuple[list[LabelIssue], list[str]]:
    """The likely label errors, most doubtful first, and notes on what could not be checked."""
    labelled = np.flatnonzero(features.y >= 0)
    if len(labelled) == 0:
        return [], ["no label issues: these images have no labels (label issues need class folders or a label column)"]
    classes, counts = np.unique(features.y[labelled], return_counts=True)
    usable = classes[counts >= 2]
    notes = []
    if len(usable) < len(classes):
        lonely = ", ".join(features.classes[c] for c in classes[counts < 2])
        notes.append(f"labels of classes with a single image not checked: {lonely}")
    if len(usable) < 2:
        return [], notes + ["no label issues: they need two classes with at least two labelled images each"]
    rows = labelled[np.isin(features.y[labelled], usable)]
    y = features.y[rows]
    k = int(min(folds, counts[counts >= 2].min()))
    proba = out_of_fold_proba(reduce(features.X[rows], PCA_DIMENSIONS, seed), y, k, seed)
    given = np.searchsorted(usable, y)
    at = np.arange(len(rows))
    believed = proba[at, given]
    # Per class: the mean probability the model gives the images labelled with it (its confidence).
    typical = np.asarray([believed[given == c].mean() for c in range(len(usable))])
    others = proba.copy()
    others[at, given] = -1.0
    suggested = others.argmax(axis=1)
    rival = proba[at, suggested]
    wrong = (rival > believed) & ((rival >= typical[suggested]) | (believed < 1.0 - typical[given]))
    agree = float(np.mean(proba.argmax(axis=1) == given))
    if agree < WEAK_AGREEMENT:
        notes.append(f"the cross-validated head agrees with only {agree:.0%} of the labels (chance: "
                     f"{1 / len(usable):.0%}): label issues are unreliable on vectors that separate the classes "
                     "this poorly")
    order = np.flatnonzero(wrong)[np.argsort(believed[wrong] - rival[wrong], kind="stable")]
    issues = [
        LabelIssue(int(rows[i]), str(features.paths[rows[i]]), features.classes[usable[given[i]]],
                   features.classes[usable[suggested[i]]], float(rival[i] - believed[i]))
        for i in order
    ]
    return issues, notes
