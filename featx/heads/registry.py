"""The heads featx can fit, as one table: adding a head is one builder and one entry.

Each entry says everything featx needs to know about one kind of head: how to build it, which
types its saved file may hold, and how (or whether) a fitted one becomes Keras layers for
fine-tuning and export. A builder takes keyword-only parameters (the head's parameters, listed by
``featx heads`` and settable with ``--param key=value``) and returns an unfitted scikit-learn
estimator. The scikit-learn heads are plain ``Pipeline(StandardScaler, ...)`` objects, so their
fitted parts (``coef_``, ``intercept_``, the scaler's ``mean_``/``scale_``) stay reachable.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from dataclasses import dataclass

from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from featx.errors import OptionError
from featx.heads.keras_head import KerasHead
from featx.heads.layers import keras_layers, logreg_layers, svm_layers


def _scaled(estimator: BaseEstimator, scale: bool) -> BaseEstimator:
    return make_pipeline(StandardScaler(), estimator) if scale else estimator


def logreg(*, C=1.0, max_iter=1000, class_weight=None, scale=True, random_state=None):
    """StandardScaler + LogisticRegression (multinomial, L2-regularised)."""
    return _scaled(LogisticRegression(C=C, max_iter=max_iter, class_weight=class_weight,
                                      random_state=random_state), scale)


def svm(*, C=1.0, kernel="rbf", gamma="scale", class_weight=None, calibration_cv=5, scale=True, random_state=None):
    """StandardScaler + SVC; probabilities by Platt scaling (CalibratedClassifierCV, ensemble=False).

    ``kernel="linear"`` uses LinearSVC (one-vs-rest): one weight vector per class, so the head
    converts exactly into a Keras Dense layer for fine-tuning and export, and fits much faster.
    """
    if kernel not in ("linear", "rbf"):
        raise ValueError(f"The 'kernel' parameter of the svm head must be one of 'linear', 'rbf'. Got {kernel!r} instead.")
    if kernel == "linear":
        svc = LinearSVC(C=C, class_weight=class_weight, random_state=random_state)
    else:
        svc = SVC(C=C, kernel=kernel, gamma=gamma, class_weight=class_weight)
    return _scaled(CalibratedClassifierCV(svc, cv=calibration_cv, ensemble=False), scale)


def knn(*, n_neighbors=5, weights="uniform", scale=False):
    """k-nearest neighbours by cosine distance."""
    return _scaled(KNeighborsClassifier(n_neighbors=n_neighbors, weights=weights, metric="cosine"), scale)


def sgd(*, alpha=0.0001, epochs=20, scale=True, random_state=None):
    """StandardScaler + SGDClassifier (logistic loss), trained in mini-batches from a lazy cache.

    Its fit streams the training vectors (scaler's ``partial_fit``, then ``epochs`` passes of the
    classifier's), so memory holds one batch: for caches bigger than RAM. A linear model, it
    converts into a Keras Dense layer like logreg.
    """
    return _scaled(SGDClassifier(loss="log_loss", alpha=alpha, max_iter=epochs, tol=None,
                                 random_state=random_state), scale)


@dataclass(frozen=True)
class HeadSpec:
    """One kind of head: how to build it, which types its saved file may hold, how it becomes Keras."""

    name: str
    build: Callable[..., BaseEstimator]
    # Every type a fitted head of this kind is made of, beyond what skops trusts by default
    # (builtins, NumPy, scikit-learn estimators); the only types its saved file may hold.
    trusted: tuple[type | str, ...]
    # Fitted Head -> the Keras layers that give its probabilities (featx.heads.layers), for
    # fine-tuning and export; None when the head has no Keras equivalent. A converter may refuse
    # some parameters (an svm converts only with kernel='linear') with a one-line FeatxError.
    to_keras: Callable[..., list] | None = None
    # Trains from a lazy cache in mini-batches (featx.heads.fit streams it with partial_fit); the
    # other heads load every training vector into memory first.
    streams: bool = False

    @property
    def summary(self) -> str:
        return (inspect.getdoc(self.build) or "").splitlines()[0]

    def defaults(self) -> dict[str, object]:
        """The head's parameters and their default values."""
        return {name: p.default for name, p in inspect.signature(self.build).parameters.items()}

    def check_params(self, params: dict[str, object]) -> None:
        allowed = self.defaults()
        for key in params:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise OptionError(
                    f"unknown parameter {key!r} for the {self.name} head; allowed: "
                    f"{', '.join(allowed)}.{hint}"
                )

    def make(self, **params) -> BaseEstimator:
        self.check_params(params)
        try:
            return self.build(**params)
        except (TypeError, ValueError) as exc:
            raise OptionError(f"{self.name} head: {exc}") from exc


_SCALED = (Pipeline, StandardScaler)
HEADS: dict[str, HeadSpec] = {
    "logreg": HeadSpec("logreg", logreg, _SCALED + (LogisticRegression,), to_keras=logreg_layers),
    # CalibratedClassifierCV(ensemble=False) is scikit-learn's replacement for SVC(probability=True)
    # (deprecated in 1.9); its fitted state holds two helper classes, trusted by name.
    "svm": HeadSpec("svm", svm, _SCALED + (CalibratedClassifierCV, SVC, LinearSVC, "sklearn.calibration._CalibratedClassifier",
                                           "sklearn.calibration._SigmoidCalibration"), to_keras=svm_layers),
    "sgd": HeadSpec("sgd", sgd, _SCALED + (SGDClassifier,), to_keras=logreg_layers, streams=True),
    "knn": HeadSpec("knn", knn, _SCALED + (KNeighborsClassifier,)),
    "keras": HeadSpec("keras", KerasHead, (KerasHead,), to_keras=keras_layers),
}


def list_heads() -> list[str]:
    """The names of the heads featx can fit."""
    return list(HEADS)


def convertible_heads() -> list[str]:
    """The heads that become Keras layers for fine-tuning and export."""
    return [name for name, spec in HEADS.items() if spec.to_keras is not None]


def get_head_spec(name: str) -> HeadSpec:
    """The registry entry of head ``name`` (case-insensitive); unknown names suggest close ones."""
    spec = HEADS.get(str(name).lower())
    if spec is None:
        close = difflib.get_close_matches(str(name).lower(), HEADS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise OptionError(f"unknown head {name!r}; available heads: {', '.join(HEADS)}.{hint}")
    return spec


def make_head(name: str, **params) -> BaseEstimator:
    """An unfitted scikit-learn estimator for head ``name`` (for Pipeline, GridSearchCV, ...)."""
    return get_head_spec(name).make(**params)
