"""Fitted heads and preprocessing as plain Keras layers, for fine-tuning and export.

A ``keras`` head becomes its own Dense → Dropout → Dense network; a ``logreg`` head one
Dense+softmax layer with the StandardScaler folded into its weights; a linear ``svm`` head a Dense
decision layer followed by its Platt calibration (a diagonal Dense with ``log_sigmoid``, then
softmax normalises the per-class probabilities exactly as scikit-learn does). The converted
network gives the same probabilities as the head. Only standard layers are used, so the models
load with Keras' safe mode.
"""

from __future__ import annotations

import numpy as np

from featx._tf import import_keras
from featx.errors import FeatxError

CONVERTIBLE = ("keras", "logreg", "svm (kernel='linear')")
_ABSENT = -1e4  # logit of a class the head never saw: softmax gives it exactly 0


def head_network(head):
    """A Keras model mapping (None, feature_dim) vectors to (None, len(head.classes)) probabilities."""
    _, keras = import_keras()
    inputs = keras.Input((head.feature_dim,), name="features")
    estimator = head.estimator
    if head.kind == "keras":
        outputs = _keras_head(keras, inputs, estimator, head)
    elif head.kind == "logreg":
        mean, scale, model = _unscale(estimator)
        outputs = _logreg(keras, inputs, model, mean, scale, head)
    elif head.kind == "svm" and head.params.get("kernel", "rbf") == "linear":
        mean, scale, model = _unscale(estimator)
        outputs = _linear_svm(keras, inputs, model, mean, scale, head)
    else:
        raise FeatxError(
            f"head {head.name} is a {head.kind} head, which has no equivalent Keras layer; fine-tune and "
            f"export need a {', '.join(CONVERTIBLE)} head: featx fit-head --head keras"
        )
    return keras.Model(inputs, outputs, name="featx_head")


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


def _dense(keras, units, kernel, bias, activation=None, name=None):
    layer = keras.layers.Dense(units, activation=activation, name=name)
    layer.build((None, kernel.shape[0]))
    layer.set_weights([kernel.astype(np.float32), bias.astype(np.float32)])
    return layer


def _keras_head(keras, inputs, estimator, head):
    (w1, w2), (b1, b2) = estimator.coefs_, estimator.intercepts_
    present = np.asarray(estimator.classes_, np.int64)
    w2, b2 = _widen(np.asarray(w2), np.asarray(b2), present, len(head.classes))
    hidden = _dense(keras, w1.shape[1], np.asarray(w1), np.asarray(b1), "relu", "featx_dense_1")(inputs)
    hidden = keras.layers.Dropout(float(head.params.get("dropout", estimator.dropout)))(hidden)
    return _dense(keras, len(head.classes), w2, b2, "softmax", "featx_dense_2")(hidden)


def _logreg(keras, inputs, model, mean, scale, head):
    kernel, bias = _fold(model.coef_, model.intercept_, mean, scale)
    if kernel.shape[1] == 1:  # binary: p(classes_[1]) = sigmoid(z) = softmax([0, z])
        kernel, bias = np.hstack([np.zeros_like(kernel), kernel]), np.concatenate([[0.0], bias])
    kernel, bias = _widen(kernel, bias, np.asarray(model.classes_, np.int64), len(head.classes))
    return _dense(keras, len(head.classes), kernel, bias, "softmax", "featx_logreg")(inputs)


def _linear_svm(keras, inputs, model, mean, scale, head):
    calibrated = model.calibrated_classifiers_[0]
    svc = calibrated.estimator
    kernel, bias = _fold(svc.coef_, np.atleast_1d(svc.intercept_), mean, scale)
    decision = _dense(keras, kernel.shape[1], kernel, bias, None, "featx_svm_decision")(inputs)
    a = np.asarray([c.a_ for c in calibrated.calibrators], np.float64)
    b = np.asarray([c.b_ for c in calibrated.calibrators], np.float64)
    if len(a) == 1:  # binary: p1 = sigmoid(-(a d + b)), p0 = 1 - p1 = sigmoid(a d + b)
        cal_kernel, cal_bias = np.asarray([[a[0], -a[0]]]), np.asarray([b[0], -b[0]])
    else:  # one-vs-rest: p_k = sigmoid(-(a_k d_k + b_k)), then divided by their sum
        cal_kernel, cal_bias = np.diag(-a), -b
    log_proba = _dense(keras, cal_kernel.shape[1], cal_kernel, cal_bias, "log_sigmoid", "featx_svm_calibration")(decision)
    logits_kernel, logits_bias = _widen(np.eye(cal_kernel.shape[1]), np.zeros(cal_kernel.shape[1]),
                                        np.asarray(model.classes_, np.int64), len(head.classes))
    logits = _dense(keras, len(head.classes), logits_kernel, logits_bias, None, "featx_svm_classes")(log_proba)
    return keras.layers.Activation("softmax", name="featx_svm_proba")(logits)


def preprocessing_layers(mode: str) -> list:
    """Layers equal to ``keras.applications`` preprocess_input of ``mode`` on raw 0–255 RGB."""
    _, keras = import_keras()
    if mode == "none":
        return []
    if mode == "tf":
        return [keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="featx_preprocess_tf")]
    if mode == "torch":
        return [
            keras.layers.Rescaling(1 / 255.0, name="featx_preprocess_torch_scale"),
            keras.layers.Normalization(mean=[0.485, 0.456, 0.406], variance=np.square([0.229, 0.224, 0.225]),
                                       name="featx_preprocess_torch_normalize"),
        ]
    if mode == "caffe":  # RGB → BGR, then the ImageNet BGR mean subtracted: one fixed 1×1 convolution
        layer = keras.layers.Conv2D(3, 1, name="featx_preprocess_caffe", trainable=False)
        layer.build((None, None, None, 3))
        swap = np.zeros((1, 1, 3, 3), np.float32)
        swap[0, 0, [2, 1, 0], [0, 1, 2]] = 1.0
        layer.set_weights([swap, -np.asarray([103.939, 116.779, 123.68], np.float32)])
        return [layer]
    raise FeatxError(f"unknown preprocessing mode {mode!r}")
