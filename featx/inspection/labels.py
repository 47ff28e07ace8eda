"""Likely label errors: where a cross-validated head disbelieves the label an image carries.

Each labelled image is scored by a model that never saw it: stratified K-fold, out-of-fold
probabilities of ``StandardScaler + LogisticRegression`` on the full vectors, strongly regularised
(``C`` = 0.01). An image is an issue when the model finds another class more probable than its label;
issues are ranked by the probability of the given label, lowest first (confident learning's
self-confidence, Northcutt et al., 2021), and suggest the most probable other class.

Chosen on real features (benchmarks/inspect_real.py: Fashion-MNIST through an ImageNet
EfficientNet-Lite0, 2-10 % of labels flipped): a PCA to 128 dimensions before the head lost a
third of the flips it finds on the full vectors, ranking by the margin p(suggested) - p(given)
lost a fifth against the self-confidence, and ``C`` = 0.01 beat scikit-learn's default of 1 on
every set. The out-of-fold accuracy is returned with the issues: how far to trust them.
"""

from __future__ import annotations

import numpy as np

from featx.features.vectors import Features
from featx.inspection.findings import LabelIssue

C = 0.01  # the head's inverse regularisation strength (see the module's docstring)
WEAK_AGREEMENT = 0.6  # below this out-of-fold accuracy, a note says the label issues are unreliable


def out_of_fold_proba(X: np.ndarray, y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Probabilities (columns: the sorted classes of ``y``) each from a fold that held the row out."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    cv = StratifiedKFold(folds, shuffle=True, random_state=seed)
    head = make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=1000, random_state=seed))
    # L-BFGS's many small matrix products run 10-30x slower when BLAS spreads each over threads.
    with threadpool_limits(1, user_api="blas"):
        return cross_val_predict(head, np.asarray(X, np.float32), y, cv=cv, method="predict_proba")


def find_label_issues(features: Features, *, folds: int = 5, seed: int = 0
                      ) -> tuple[list[LabelIssue], list[str], float | None]:
    """The likely label errors, most doubtful first, notes on what could not be checked, and the
    scoring head's out-of-fold accuracy (None when the labels could not be checked)."""
    labelled = np.flatnonzero(features.y >= 0)
    if len(labelled) == 0:
        return [], ["no label issues: these images have no labels (label issues need class folders or a label "
                    "column)"], None
    classes, counts = np.unique(features.y[labelled], return_counts=True)
    usable = classes[counts >= 2]
    notes = []
    if len(usable) < len(classes):
        lonely = ", ".join(features.classes[c] for c in classes[counts < 2])
        notes.append(f"labels of classes with a single image not checked: {lonely}")
    if len(usable) < 2:
        return [], notes + ["no label issues: they need two classes with at least two labelled images each"], None
    rows = labelled[np.isin(features.y[labelled], usable)]
    y = features.y[rows]
    k = int(min(folds, counts[counts >= 2].min()))
    proba = out_of_fold_proba(features.X[rows], y, k, seed)
    given = np.searchsorted(usable, y)
    at = np.arange(len(rows))
    believed = proba[at, given]
    others = proba.copy()
    others[at, given] = -1.0
    suggested = others.argmax(axis=1)
    wrong = proba[at, suggested] > believed
    agree = float(np.mean(proba.argmax(axis=1) == given))
    if agree < WEAK_AGREEMENT:
        notes.append(f"the cross-validated head agrees with only {agree:.0%} of the labels (chance: "
                     f"{1 / len(usable):.0%}): label issues are unreliable on vectors that separate the classes "
                     "this poorly")
    order = np.flatnonzero(wrong)[np.argsort(believed[wrong], kind="stable")]
    issues = [
        LabelIssue(int(rows[i]), str(features.paths[rows[i]]), features.classes[usable[given[i]]],
                   features.classes[usable[suggested[i]]], float(1.0 - believed[i]), float(proba[at[i], suggested[i]]))
        for i in order
    ]
    return issues, notes, agree
