"""`KerasHead`: the classic transfer-learning head as a scikit-learn classifier.

Dense(units, relu) → Dropout → Dense(n_classes, softmax), trained with Adam in large batches
(``batch_size="auto"``: a 32nd of the training rows, between 32 and 512, so an epoch is a few
dozen compiled steps on large caches) and early stopping on the validation loss.
:func:`network_layers` is the one definition of that network, for training and for conversion to
Keras layers. Keras is imported only when a network is built (``fit``); the
trained weights are kept as NumPy arrays, so predicting, pickling, cloning and saving a fitted head
need no TensorFlow.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils import check_random_state
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_scalar, validate_data

from featx.heads.split import stratified_holdout

DENSE_NAMES = ("featx_dense_1", "featx_dense_2")


def network_layers(n_classes: int, *, units: int, dropout: float, seed: int | None = None,
                   weights: Sequence[np.ndarray] | None = None) -> list:
    """The Keras head's network as layers: Dense(units, relu) → Dropout → Dense(n_classes, softmax).

    The one definition of that network: :meth:`KerasHead.fit` trains it from Glorot initialisers
    seeded by ``seed``; :mod:`featx.heads.layers` rebuilds it with the fitted ``weights``
    (``[w1, b1, w2, b2]``) for fine-tuning and export. Keras is imported here, when called.
    """
    from featx.backend import import_keras

    keras = import_keras()

    def glorot(offset: int):
        return keras.initializers.GlorotUniform(seed=None if seed is None else seed + offset)

    hidden = keras.layers.Dense(units, activation="relu", kernel_initializer=glorot(0), name=DENSE_NAMES[0])
    output = keras.layers.Dense(n_classes, activation="softmax", kernel_initializer=glorot(1), name=DENSE_NAMES[1])
    if weights is not None:
        w1, b1, w2, b2 = (np.asarray(w, np.float32) for w in weights)
        hidden.build((None, w1.shape[0]))
        hidden.set_weights([w1, b1])
        output.build((None, units))
        output.set_weights([w2, b2])
    return [hidden, keras.layers.Dropout(dropout, seed=seed), output]


def _rows(keras, X, y, weights, batch_size: int, seed: int | None = None):
    """Batches of (X, y[, sample weights]) as a Keras ``PyDataset`` (any backend, no tf.data);
    with a ``seed``, the rows are reshuffled every epoch from it."""

    class Rows(keras.utils.PyDataset):
        def __init__(self):
            super().__init__()
            self.rng = None if seed is None else np.random.default_rng(seed)
            self.columns = [np.asarray(X, np.float32), np.asarray(y)] + ([] if weights is None else [weights])
            self.on_epoch_end()

        def __len__(self) -> int:
            return -(-len(X) // batch_size)

        def __getitem__(self, index: int):
            rows = self.order[index * batch_size:(index + 1) * batch_size]
            return tuple(column[rows] for column in self.columns)

        def on_epoch_end(self) -> None:
            self.order = np.arange(len(X)) if self.rng is None else self.rng.permutation(len(X))

    return Rows()


class KerasHead(ClassifierMixin, BaseEstimator):
    """A small dense network trained on feature vectors.

    ``fit(X, y, validation_data=(X_val, y_val))`` validates on the given rows; without them a
    stratified ``validation_fraction`` of the training rows is held out. When that is impossible
    (a class with a single row) or ``validation_fraction=None``, early stopping watches the
    training loss instead (``monitor_`` says which). Fitted: ``classes_``, ``coefs_``,
    ``intercepts_`` (the two Dense layers), ``history_`` (per-epoch loss and accuracy),
    ``n_iter_`` (epochs run) and ``best_epoch_`` (1-based, whose weights were kept).
    """

    def __init__(
        self,
        *,
        units=256,
        dropout=0.5,
        epochs=50,
        batch_size="auto",
        learning_rate=1e-3,
        patience=3,
        validation_fraction=0.1,
        class_weight=None,
        random_state=None,
        verbose=0,
    ):
        self.units = units
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.class_weight = class_weight
        self.random_state = random_state
        self.verbose = verbose

    def _check_params(self) -> None:
        check_scalar(self.units, "units", numbers.Integral, min_val=1)
        check_scalar(self.dropout, "dropout", numbers.Real, min_val=0.0, max_val=1.0, include_boundaries="left")
        check_scalar(self.epochs, "epochs", numbers.Integral, min_val=1)
        if self.batch_size != "auto":
            check_scalar(self.batch_size, "batch_size", numbers.Integral, min_val=1)
        check_scalar(self.learning_rate, "learning_rate", numbers.Real, min_val=0.0, include_boundaries="neither")
        check_scalar(self.patience, "patience", numbers.Integral, min_val=0)
        if self.validation_fraction is not None:
            check_scalar(self.validation_fraction, "validation_fraction", numbers.Real, min_val=0.0,
                         max_val=1.0, include_boundaries="neither")
        if not (self.class_weight is None or self.class_weight == "balanced" or isinstance(self.class_weight, dict)):
            raise ValueError(
                f"The 'class_weight' parameter of KerasHead must be None, 'balanced' or a dict. "
                f"Got {self.class_weight!r} instead."
            )

    def fit(self, X, y, *, validation_data=None):
        """Build and train the network; ``validation_data`` is an optional ``(X_val, y_val)``."""
        self._check_params()
        X, y = validate_data(self, X, y, dtype=[np.float64, np.float32])
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"KerasHead needs at least 2 classes to train; got 1 class ({self.classes_[0]!r}).")
        seed = int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))
        # One weight per class, learnt from the training labels and applied to both the training
        # and the validation loss, so early stopping watches the loss that is being minimised.
        per_class = None
        if self.class_weight is not None:
            per_class = compute_class_weight(self.class_weight, classes=self.classes_, y=y).astype(np.float32)

        X_val = y_val = None
        if validation_data is not None:
            X_val, y_val = validation_data
            X_val = validate_data(self, X_val, reset=False, dtype=[np.float64, np.float32])
            y_val = self._encode(np.asarray(y_val))
        elif self.validation_fraction is not None:
            held = stratified_holdout(y_index, self.validation_fraction, seed)
            if held is not None:
                train, val = held
                X, X_val, y_index, y_val = X[train], X[val], y_index[train], y_index[val]
        self.monitor_ = "val_loss" if X_val is not None else "loss"

        model, history = self._train(X, y_index, X_val, y_val, per_class, seed)
        (w1, b1), (w2, b2) = (model.get_layer(name).get_weights() for name in DENSE_NAMES)
        self.coefs_ = [np.asarray(w1, dtype=np.float32), np.asarray(w2, dtype=np.float32)]
        self.intercepts_ = [np.asarray(b1, dtype=np.float32), np.asarray(b2, dtype=np.float32)]
        self.history_ = {key: [float(v) for v in values] for key, values in history.history.items()}
        self.n_iter_ = len(self.history_["loss"])
        monitored = self.history_[self.monitor_]
        self.best_epoch_ = int(np.argmin(monitored)) + 1
        return self

    def _train(self, X, y, X_val, y_val, per_class, seed):
        from featx.backend import import_keras

        keras = import_keras()
        inputs = keras.Input((X.shape[1],))
        outputs = inputs
        for layer in network_layers(len(self.classes_), units=self.units, dropout=self.dropout, seed=seed):
            outputs = layer(outputs)
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.Adam(self.learning_rate),
                      loss="sparse_categorical_crossentropy", metrics=["accuracy"])

        def weights(labels):
            return None if per_class is None else per_class[labels]

        batch_size = self._batch_size(len(X))
        train = _rows(keras, X, y, weights(y), batch_size, seed=seed)
        val = None if X_val is None else _rows(keras, X_val, y_val, weights(y_val), max(batch_size, 256))
        stop = keras.callbacks.EarlyStopping(monitor=self.monitor_, patience=self.patience, restore_best_weights=True)
        history = model.fit(train, validation_data=val, epochs=self.epochs, callbacks=[stop],
                            shuffle=False, verbose=self.verbose)  # the dataset shuffles, seeded
        return model, history

    def _batch_size(self, n: int) -> int:
        """``batch_size``, or for "auto" a 32nd of the ``n`` training rows, between 32 and 512."""
        return int(np.clip(n // 32, 32, 512)) if self.batch_size == "auto" else int(self.batch_size)

    def _encode(self, y) -> np.ndarray:
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, len(self.classes_) - 1)
        if not np.all(self.classes_[index] == y):
            unknown = sorted(set(np.asarray(y).tolist()) - set(self.classes_.tolist()))
            raise ValueError(f"validation_data holds labels not seen in training: {unknown}.")
        return index

    def predict_proba(self, X) -> np.ndarray:
        """Softmax class probabilities, columns in the order of ``classes_``.

        The NumPy twin of :func:`network_layers` (Dropout is the identity when predicting), so that
        predicting needs no TensorFlow; a test checks that the two agree.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=[np.float64, np.float32])
        (w1, w2), (b1, b2) = self.coefs_, self.intercepts_
        hidden = np.maximum(X.astype(np.float64) @ w1 + b1, 0.0)  # Dropout is the identity here
        logits = hidden @ w2.astype(np.float64) + b2
        logits -= logits.max(axis=1, keepdims=True)
        proba = np.exp(logits)
        return proba / proba.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = self.random_state is None
        return tags
