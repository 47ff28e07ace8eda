"""Fitted heads as plain Keras layers: what fine-tuning and export put on top of the backbone.

Each converter takes a fitted :class:`~featx.heads.head.Head` and returns the layers that map its
(None, feature_dim) vectors to (None, len(head.classes)) probabilities, equal to
``head.predict_proba``. The registry (:mod:`featx.heads.registry`) names each head's converter.
A ``keras`` head becomes its own network (built by :func:`featx.heads.keras_head.network_layers`);
a ``logreg`` head one Dense+softmax layer with the StandardScaler folded into its weights; a linear
``svm`` head a Dense decision layer followed by its Platt calibration (a diagonal Dense with
``log_sigmoid``, then softmax normalises the per-class probabilities exactly as scikit-learn
does). Only standard layers are used, so the models load with Keras' safe mode. Keras is imported
when a converter runs, never when this module is imported.
"""

from __future__ import annotations

import numpy as np

from featx.errors import FeatxError
from featx.heads.keras_head import network_layers

_ABSENT = -1e4  # logit of a class the head never saw: softmax gives it exactly 0


def keras_layers(head) -> list:
    """The Keras head's own Dense → Dropout → Dense network, with its fitted weights."""
    estimator = head.estimator
    (w1, w2), (b1, b2) = estimator.coefs_, estimator.intercepts_
    w2, b2 = _widen(np.asarray(w2), np.asarray(b2), _present(estimator), len(head.classes))
    return network_layers(len(head.classes), units=w1.shape[1], dropout=float(estimator.dropout),
                          weights=[np.asarray(w1), np.asarray(b1), w2, b2])


def logreg_layers(head) -> list:
    """One Dense + softmax layer, the scaler folded into its kernel and bias."""
    mean, scale, model = _unscale(head.estimator)
    kernel, bias = _fold(model.coef_, model.intercept_, mean, scale)
    if kernel.shape[1] == 1:  # binary: p(classes_[1]) = sigmoid(z) = softmax([0, z])
        kernel, bias = np.hstack([np.zeros_like(kernel), kernel]), np.concatenate([[0.0], bias])
    kernel, bias = _widen(kernel, bias, _present(model), len(head.classes))
    return [_dense(kernel, bias, "softmax", "featx_logreg")]


def svm_layers(head) -> list:
    """A linear svm's decision function and Platt calibration; a kernel svm has no Keras equivalent."""
    kernel_name = _svm_kernel(head.estimator)
    if kernel_name != "linear":
        raise FeatxError(
            f"head {head.name} is an svm head with kernel={kernel_name!r}, which has no equivalent Keras layer; "
            "fine-tune and export need kernel='linear': featx fit-head --head svm --param kernel=linear"
        )
    keras = _keras()
    mean, scale, model = _unscale(head.estimator)
    calibrated = model.calibrated_classifiers_[0]
    svc = calibrated.estimator
    kernel, bias = _fold(svc.coef_, np.atleast_1d(svc.intercept_), mean, scale)
    a = np.asarray([c.a_ for c in calibrated.calibrators], np.float64)
    b = np.asarray([c.b_ for c in calibrated.calibrators], np.float64)
    if len(a) == 1:  # binary: p1 = sigmoid(-(a d + b)), p0 = 1 - p1 = sigmoid(a d + b)
        cal_kernel, cal_bias = np.asarray([[a[0], -a[0]]]), np.asarray([b[0], -b[0]])
    else:  # one-vs-rest: p_k = sigmoid(-(a_k d_k + b_k)), then divided by their sum
        cal_kernel, cal_bias = np.diag(-a), -b
    logits_kernel, logits_bias = _widen(np.eye(cal_kernel.shape[1]), np.zeros(cal_kernel.shape[1]),
                                        _present(model), len(head.classes))
    return [
        _dense(kernel, bias, None, "featx_svm_decision"),
        _dense(cal_kernel, cal_bias, "log_sigmoid", "featx_svm_calibration"),
        _dense(logits_kernel, logits_bias, None, "featx_svm_classes"),
        keras.layers.Activation("softmax", name="featx_svm_proba"),
    ]


def _svm_kernel(estimator) -> str:
    """The kernel of a fitted svm head, read from what was fitted (heads saved before the linear
    default recorded no kernel): a kernel map step (Nystroem) or an SVC's own kernel; else linear."""
    for step in getattr(estimator, "steps", [])[:-1]:
        if hasattr(step[1], "kernel"):
            return str(step[1].kernel)
    final = estimator[-1] if hasattr(estimator, "steps") else estimator
    return str(getattr(final.calibrated_classifiers_[0].estimator, "kernel", "linear"))


def _keras():
    from featx.backend import import_keras

    return import_keras()


def _present(estimator) -> np.ndarray:
    """The head's class indices the estimator saw in training (its ``classes_``)."""
    return np.asarray(estimator.classes_, np.int64)


def _unscale(estimator):
    """(mean, scale, final estimator) of an optional StandardScaler → estimator pipeline."""
    steps = getattr(estimator, "steps", None)
    if steps is None:
        return None, None, estimator
    scaler, final = steps[0][1], steps[-1][1]
    return scaler.mean_, scaler.scale_, final


def _fold(coef: np.ndarray, intercept: np.ndarray, mean, scale):
    """Dense kernel and bias equal to ``coef @ ((x - mean) / scale) + intercept``."""
    coef = np.asarray(coef, np.float64)
    if mean is None:
        return coef.T, np.asarray(intercept, np.float64)
    kernel = (coef / scale).T
    return kernel, np.asarray(intercept, np.float64) - (mean / scale) @ coef.T


def _widen(kernel: np.ndarray, bias: np.ndarray, present: np.ndarray, n_classes: int):
    """Place the columns of the classes the estimator saw; the others get a logit of -1e4."""
    full_kernel = np.zeros((kernel.shape[0], n_classes))
    full_bias = np.full(n_classes, _ABSENT)
    full_kernel[:, present], full_bias[present] = kernel, bias
    return full_kernel, full_bias


def _dense(kernel: np.ndarray, bias: np.ndarray, activation: str | None, name: str):
    """A built Dense layer holding ``kernel`` and ``bias``."""
    keras = _keras()
    layer = keras.layers.Dense(kernel.shape[1], activation=activation, name=name)
    layer.build((None, kernel.shape[0]))
    layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return layer
