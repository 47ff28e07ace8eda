"""How good a head is: accuracy, top-k, macro-F1, per-class scores, confusion, worst mistakes."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from featx.checks import check_path, check_positive
from featx.data.records import SPLITS
from featx.errors import FeatxError, MissingFileError, OptionError, OptionTypeError
from featx.features.fusion import cache_label, fused_caches, load_fused
from featx.features.vectors import Features, content_ids, load_features, paths_at
from featx.heads.head import Head

EVALUATION_SPLITS = (*SPLITS, "all")  # "all": every labelled image of the cache


def summary_scores(y: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """``n``, ``accuracy`` and ``macro_f1`` of probabilities against class indices."""
    from sklearn.metrics import f1_score

    predicted = np.argmax(proba, axis=1)
    labels = np.arange(proba.shape[1])
    return {
        "n": int(len(y)),
        "accuracy": float(np.mean(predicted == y)) if len(y) else float("nan"),
        "macro_f1": float(f1_score(y, predicted, labels=labels, average="macro", zero_division=0)),
    }


def top_k_accuracy(y: np.ndarray, proba: np.ndarray, k: int) -> float:
    """Share of rows whose true class is among the ``k`` most probable (ties count against)."""
    true_score = proba[np.arange(len(y)), y]
    return float(np.mean((proba > true_score[:, None]).sum(axis=1) < k))


@dataclass(frozen=True)
class Evaluation:
    """A head's scores on one split of a cache."""

    head: str
    split: str
    cache: str
    n: int
    missing: int  # images of the split no longer in the cache
    accuracy: float
    macro_f1: float
    top_k: int
    top_k_accuracy: float
    classes: tuple[str, ...]
    per_class: list[dict]  # class, precision, recall, f1, support
    confusion: list[list[int]]  # rows: true class, columns: predicted class
    misclassified: list[dict]  # path, true, predicted, confidence; most confident first

    def to_dict(self) -> dict:
        return asdict(self)


def evaluate_head(head: Head, features: Features | str | os.PathLike | None = None, *, split: str = "test",
                  top_k: int = 5, misclassified: int = 10) -> Evaluation:
    """Score ``head`` on a split of ``features`` (a Features or a cache file; default: the cache it
    was fitted on).

    ``split`` is one of train, val, test (the images the head recorded for it, found by content
    id) or all (every labelled image of the cache).
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    if not isinstance(head, Head):
        raise OptionTypeError(f"{{param}} must be a Head (featx.load_head); got {type(head).__name__}.", param="head")
    if not isinstance(features, Features):
        check_path("features", features, optional=True)
    if split not in EVALUATION_SPLITS:
        raise OptionError(f"{{param}} must be one of {', '.join(EVALUATION_SPLITS)}; got {split!r}.", param="split")
    check_positive("top_k", top_k)
    if isinstance(misclassified, bool) or not isinstance(misclassified, int) or misclassified < 0:
        raise OptionError(f"{{param}} must be an integer, 0 or more; got {misclassified!r}.", param="misclassified")
    if features is None:
        features = _fitted_cache(head)
    elif not isinstance(features, Features):
        features = load_features(features)
    head.check_compatible(features)
    y_all = head.class_indices(features)
    rows, missing = _split_rows(head, features, y_all, split)
    y = y_all[rows]
    proba = head.predict_proba(features.X[rows])
    predicted = np.argmax(proba, axis=1)
    labels = np.arange(len(head.classes))
    precision, recall, f1, support = precision_recall_fscore_support(y, predicted, labels=labels, zero_division=0)
    scores = summary_scores(y, proba)
    k = min(top_k, len(head.classes))
    wrong = np.flatnonzero(predicted != y)
    wrong = wrong[np.argsort(-proba[wrong, predicted[wrong]], kind="stable")][:misclassified]
    return Evaluation(
        head=head.name, split=split, cache=cache_label(features), n=scores["n"], missing=missing,
        accuracy=scores["accuracy"], macro_f1=scores["macro_f1"], top_k=k,
        top_k_accuracy=top_k_accuracy(y, proba, k), classes=head.classes,
        per_class=[{"class": c, "precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
                   for c, p, r, f, s in zip(head.classes, precision, recall, f1, support)],
        confusion=confusion_matrix(y, predicted, labels=labels).tolist(),
        misclassified=[{"path": path, "true": head.classes[y[i]],
                        "predicted": head.classes[predicted[i]], "confidence": float(proba[i, predicted[i]])}
                       for i, path in zip(wrong, paths_at(features, rows[wrong]))],
    )


def _fitted_cache(head: Head) -> Features:
    if head.is_fused:
        caches = fused_caches(head.sources)
        gone = [c for c in caches if not Path(c).is_file()]
        if gone or not caches:
            raise MissingFileError(
                f"the cache {', '.join(gone) or '(none recorded)'} head {head.name} was fitted on is gone; "
                "refit the head on caches of the same backbones.", param="features"
            )
        return load_fused(caches)
    if not head.cache_path or not Path(head.cache_path).is_file():
        raise MissingFileError(
            f"the cache head {head.name} was fitted on ({head.cache_path}) is gone; pass {{param}}: "
            "a cache of the same backbone configuration.", param="features"
        )
    return load_features(head.cache_path)


def _split_rows(head: Head, features: Features, y: np.ndarray, split: str) -> tuple[np.ndarray, int]:
    labelled = np.flatnonzero(y >= 0)
    if split == "all":
        rows, missing = labelled, 0
    else:
        ids = set(head.split.get(split, []))
        if not ids:
            have = [s for s in SPLITS if head.split.get(s)]
            raise FeatxError(f"head {head.name} has no {split!r} images; set {{param}} to {' or '.join(have + ['all'])}.",
                             param="split")
        have = content_ids(features)  # bytes: no str per image
        rows = labelled[np.isin(have[labelled], np.asarray([i.encode() for i in ids], dtype=bytes))]
        missing = len(ids) - len(np.unique(have[rows]))
    if len(rows) == 0:
        raise FeatxError(
            f"none of head {head.name}'s {split!r} images are labelled in {features.cache_path}; "
            "set {param} to 'all' to evaluate on every labelled image of that cache.", param="split"
        )
    return rows, missing
