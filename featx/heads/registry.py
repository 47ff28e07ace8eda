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
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.calibration import CalibratedClassifierCV
from sklearn.kernel_approximation import Nystroem
from sklearn.linear_model import LogisticRegression, SGDClassifier
from sklearn.neighbors import KNeighborsClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC, LinearSVC

from featx.errors import OptionError, OptionTypeError
from featx.heads import cost
from featx.heads.keras_head import KerasHead
from featx.heads.layers import keras_layers, logreg_layers, svm_layers
from featx.heads.unitrows import UnitRows
from featx.heads.zeroshot import ZeroShotHead, zeroshot, zeroshot_context, zeroshot_layers


def _scaled(estimator: BaseEstimator, scale: bool) -> BaseEstimator:
    return make_pipeline(StandardScaler(), estimator) if scale else estimator


def logreg(*, C=1.0, max_iter=1000, class_weight=None, scale=True, random_state=None):
    """StandardScaler + LogisticRegression (multinomial, L2-regularised)."""
    return _scaled(LogisticRegression(C=C, max_iter=max_iter, class_weight=class_weight,
                                      random_state=random_state), scale)


def svm(*, alpha=1e-4, epochs=5, C=None, kernel="linear", gamma="scale", n_components=1000, class_weight=None,
        calibration_cv=3, scale=True, random_state=None):
    """StandardScaler + a linear SVM (hinge loss, averaged SGD); Platt-calibrated probabilities.

    The SVM is trained by averaged stochastic gradient descent on the hinge loss with L2 penalty
    ``alpha`` for at most ``epochs`` passes: its cost grows linearly with the vectors, so it fits
    in seconds at 10,000 x 2,048 and stays practical at 100,000. ``C`` (a number) uses liblinear's
    exact solver instead (``LinearSVC``, dual or primal by shape), which converges to the optimum but
    is much slower on large dense vectors. Either way one weight vector per class: the head converts
    exactly into Keras Dense layers for fine-tuning and export. ``kernel="rbf"`` first maps the
    standardised vectors into ``n_components`` approximate RBF-kernel features (``Nystroem``,
    ``gamma="scale"`` is 1/n_features on standardised vectors); such a head does not convert.
    Probabilities come from a sigmoid per class fitted on ``calibration_cv`` out-of-fold decision
    values (``CalibratedClassifierCV(ensemble=False)``).
    """
    if kernel not in ("linear", "rbf"):
        raise ValueError(f"The 'kernel' parameter of the svm head must be one of 'linear', 'rbf'. Got {kernel!r} instead.")
    if C is None:
        svc = SGDClassifier(loss="hinge", alpha=alpha, max_iter=epochs, tol=None, average=True,
                            class_weight=class_weight, random_state=random_state)
    else:
        svc = LinearSVC(C=C, dual="auto", class_weight=class_weight, random_state=random_state)
    steps = [StandardScaler()] if scale else []
    if kernel == "rbf":
        steps.append(Nystroem(kernel="rbf", gamma=_rbf_gamma(gamma, scale), n_components=n_components,
                              random_state=random_state))
    calibrated = CalibratedClassifierCV(svc, cv=calibration_cv, ensemble=False)
    return make_pipeline(*steps, calibrated) if steps else calibrated


def _rbf_gamma(gamma, scale: bool) -> float | None:
    """Nystroem's gamma: None is 1/n_features, which is SVC's 'scale' on standardised vectors."""
    if gamma == "auto" or (gamma == "scale" and scale):
        return None
    if gamma == "scale":
        raise ValueError("gamma='scale' needs standardised vectors (scale=True); with scale=False give gamma "
                         "as a number.")
    return gamma


def knn(*, n_neighbors=5, weights="uniform", scale=False):
    """k-nearest neighbours by cosine distance (rows made unit length in float64 first).

    The :class:`~featx.heads.unitrows.UnitRows` step makes the distance right whatever the
    vectors' scale: float32 cosine counts rows of norm below ~1e-6, as random weights give, as zero.
    """
    steps = [StandardScaler()] if scale else []
    return make_pipeline(*steps, UnitRows(), KNeighborsClassifier(n_neighbors=n_neighbors, weights=weights,
                                                                   metric="cosine"))


def sgd(*, alpha=0.0001, epochs=20, scale=True, random_state=None):
    """StandardScaler + SGDClassifier (logistic loss), trained in mini-batches from a lazy cache.

    Its fit streams the training vectors (scaler's ``partial_fit``, then ``epochs`` passes of the
    classifier's), so memory holds one batch: for caches bigger than RAM. A linear model, it
    converts into a Keras Dense layer like logreg.
    """
    return _scaled(SGDClassifier(loss="log_loss", alpha=alpha, max_iter=epochs, tol=None,
                                 random_state=random_state), scale)


def softmax_proba(estimator, X) -> np.ndarray:
    """Softmax of the one-vs-rest decision values (binary: ``[0, d]``), columns in ``classes_`` order.

    The sgd head's probabilities, and exactly what its Keras layer computes (:func:`logreg_layers`).
    scikit-learn's own ``predict_proba`` of a one-vs-rest log-loss SGDClassifier normalises per-class
    sigmoids, which saturate to exact ties at 1.0 once decision values pass ~37, as SGD's weights
    often make them: the argmax of those ties is the first class, not the best one.
    """
    decision = np.asarray(estimator.decision_function(X), np.float64)
    if decision.ndim == 1:
        decision = np.column_stack([np.zeros_like(decision), decision])
    decision -= decision.max(axis=1, keepdims=True)
    proba = np.exp(decision)
    return proba / proba.sum(axis=1, keepdims=True)


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
    # (fitted estimator, X) -> probabilities, columns in estimator.classes_ order, when not the
    # estimator's own predict_proba (the sgd head's: softmax_proba).
    proba: Callable | None = None
    # (n, d, k, params) -> estimated seconds to fit and score on n vectors of d dimensions and k
    # classes (featx.heads.cost): a head estimated to take long says so before it starts.
    cost: Callable[[int, int, int, dict], float] | None = None
    # Trains from a lazy cache in mini-batches (featx.heads.fit streams it with partial_fit); the
    # other heads load every training vector into memory first.
    streams: bool = False
    # Features -> parameters the head takes from the cache it is fitted on (the zeroshot head: class
    # names and text tower); parameters given by the user win.
    context: Callable | None = None
    # Ranked by compare when no heads are named (the zeroshot head needs a cache with a text tower: named only).
    compared_by_default: bool = True

    @property
    def summary(self) -> str:
        return (inspect.getdoc(self.build) or "").splitlines()[0]

    def defaults(self) -> dict[str, object]:
        """The head's parameters and their default values."""
        return {name: p.default for name, p in inspect.signature(self.build).parameters.items()}

    def predict_proba(self, estimator, X) -> np.ndarray:
        """Probabilities of a fitted estimator of this kind, columns in its ``classes_`` order."""
        return estimator.predict_proba(X) if self.proba is None else self.proba(estimator, X)

    def estimate_seconds(self, n: int, d: int, k: int, params: dict) -> float:
        """Estimated seconds to fit and score this head on ``n`` x ``d`` vectors of ``k`` classes."""
        return 0.0 if self.cost is None else self.cost(n, d, k, {**self.defaults(), **params})

    def check_params(self, params: dict[str, object]) -> None:
        """Refuse, before any fit, an unknown parameter or a value the head would refuse: an
        :class:`OptionTypeError` (text for a number, ...) or an :class:`OptionError` naming the
        parameter, from the checks of the estimators the head is built of (scikit-learn's
        parameter constraints, a featx estimator's ``_check_params``)."""
        allowed = self.defaults()
        for key in params:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise OptionError(
                    f"unknown parameter {key!r} for the {self.name} head; allowed: "
                    f"{', '.join(allowed)}.{hint}"
                )
        for key, value in params.items():
            kind = _kind(allowed[key])
            if kind is not None and not _is_kind(value, kind):
                raise OptionTypeError(f"invalid value for the {self.name} head: {{param}} must be {kind}; got "
                                      f"{value!r:.60}.", param=key)
        problem = self._problem(params)
        if problem is not None:
            raise self._refusal(params, problem)

    def _refusal(self, params: dict[str, object], problem: Exception) -> OptionError:
        """The one-line refusal of ``params`` that raised ``problem``, naming the parameter at fault."""
        # The parameter at fault: one refused on its own, else one whose removal settles it; among
        # several, the one the refusal names.
        alone = [k for k in params if self._problem({k: params[k]}) is not None]
        settle = alone or [k for k in params if self._problem({j: v for j, v in params.items() if j != k}) is None]
        named = [k for k in settle if re.search(rf"\b{re.escape(k)}\b", str(problem))]
        key = (named or settle or [None])[0]
        if alone:
            problem = self._problem({key: params[key]})
        reason = " ".join(str(problem).split())
        if key is None:
            return OptionError(f"{self.name} head: {reason}")
        own = f"The {key!r} parameter of the {self.name} head "  # a builder's own refusal names it already
        must = _MUST.search(reason)
        text = f"must be {must.group(1)}; got {params[key]!r:.60}." if must else f"is refused: {reason}"
        if reason.startswith(own):
            text = "{param} of the " + f"{self.name} head {text}"
        else:
            text = f"invalid value for the {self.name} head: {{param}} {text}"
        error = OptionTypeError if isinstance(problem, TypeError) and not isinstance(problem, ValueError) else OptionError
        return error(text, param=key)

    def _problem(self, params: dict[str, object]) -> Exception | None:
        """What building the head with ``params`` and checking every estimator in it raises, or None."""
        try:
            estimator = self.build(**params)
            parts = [estimator, *(v for v in estimator.get_params(deep=True).values() if isinstance(v, BaseEstimator))]
            for part in parts:
                if hasattr(part, "_parameter_constraints"):
                    part._validate_params()  # scikit-learn's own check, which fit would make
                if isinstance(part, KerasHead):
                    part._check_params()  # featx's own estimator: the checks its fit starts with
        except (TypeError, ValueError) as exc:
            return exc
        return None

    def make(self, **params) -> BaseEstimator:
        self.check_params(params)
        try:
            return self.build(**params)
        except (TypeError, ValueError) as exc:
            raise OptionError(f"{self.name} head: {exc}") from exc


# scikit-learn's "The 'C' parameter of X must be a float in the range (0.0, inf]. Got 'x' instead."
_MUST = re.compile(r"must be (.+?)\.? Got .* instead\.?$")


def _kind(default: object) -> str | None:
    """What a value of a parameter with this default must be, when its type is plain from it."""
    if isinstance(default, bool):
        return "true or false"
    return "a number" if isinstance(default, (int, float)) else None


def _is_kind(value: object, kind: str) -> bool:
    if kind == "true or false":
        return isinstance(value, (bool, np.bool_))
    # not text, not None (which some estimators accept in their constraints, then fail on in fit); other
    # types (a CV splitter, ...): the estimator judges
    return value is not None and not isinstance(value, (str, bytes))


_SCALED = (Pipeline, StandardScaler)
HEADS: dict[str, HeadSpec] = {
    "logreg": HeadSpec("logreg", logreg, _SCALED + (LogisticRegression,), to_keras=logreg_layers,
                      cost=cost.logreg_seconds),
    # CalibratedClassifierCV(ensemble=False) is scikit-learn's replacement for SVC(probability=True)
    # (deprecated in 1.9); its fitted state holds two helper classes, trusted by name. SVC stays
    # trusted: svm heads saved before the linear solver (exact RBF kernel) still load.
    "svm": HeadSpec("svm", svm, _SCALED + (CalibratedClassifierCV, SGDClassifier, LinearSVC, Nystroem, SVC,
                                           "sklearn.calibration._CalibratedClassifier",
                                           "sklearn.calibration._SigmoidCalibration"), to_keras=svm_layers,
                    cost=cost.svm_seconds),
    "sgd": HeadSpec("sgd", sgd, _SCALED + (SGDClassifier,), to_keras=logreg_layers, streams=True,
                    proba=softmax_proba, cost=cost.sgd_seconds),
    "knn": HeadSpec("knn", knn, _SCALED + (UnitRows, KNeighborsClassifier), cost=cost.knn_seconds),
    "keras": HeadSpec("keras", KerasHead, (KerasHead,), to_keras=keras_layers, cost=cost.keras_seconds),
    "zeroshot": HeadSpec("zeroshot", zeroshot, (ZeroShotHead,), to_keras=zeroshot_layers, context=zeroshot_context,
                         compared_by_default=False),
}


def list_heads() -> list[str]:
    """The names of the heads featx can fit."""
    return list(HEADS)


def convertible_heads() -> list[str]:
    """The heads that become Keras layers for fine-tuning and export."""
    return [name for name, spec in HEADS.items() if spec.to_keras is not None]


def get_head_spec(name: str, param: str | None = None) -> HeadSpec:
    """The registry entry of head ``name`` (case-insensitive); unknown names suggest close ones
    (the refusal names ``param``, the parameter that gave the name, when given)."""
    spec = HEADS.get(str(name).lower())
    if spec is None:
        close = difflib.get_close_matches(str(name).lower(), HEADS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        where = "{param}: " if param else ""
        raise OptionError(f"{where}unknown head {name!r}; available heads: {', '.join(HEADS)}.{hint}", param=param)
    return spec


def make_head(name: str, **params) -> BaseEstimator:
    """An unfitted scikit-learn estimator for head ``name`` (for Pipeline, GridSearchCV, ...)."""
    return get_head_spec(name).make(**params)
