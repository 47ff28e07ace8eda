"""The Keras head: what it does with Keras (its scikit-learn contract is checked with every head's,
in test_heads.py)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from featx.heads import KerasHead
from featx.heads.keras_head import network_layers

pytestmark = pytest.mark.integration  # trains Keras models


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(200, centers=3, n_features=6, random_state=0)
    return X.astype(np.float32), np.asarray(["ant", "bee", "cat"])[y]


def test_numpy_prediction_matches_the_keras_model(blobs):
    """predict_proba is the NumPy twin of network_layers, the network fit trains and export converts."""
    import keras

    X, y = blobs
    head = KerasHead(units=16, epochs=3, random_state=0).fit(X, y)
    weights = [head.coefs_[0], head.intercepts_[0], head.coefs_[1], head.intercepts_[1]]
    model = keras.Sequential([keras.Input((6,)), *network_layers(3, units=16, dropout=head.dropout, weights=weights)])
    np.testing.assert_allclose(head.predict_proba(X), model.predict(X, verbose=0), atol=1e-5)
    assert list(head.classes_) == ["ant", "bee", "cat"] and set(head.predict(X)) <= {"ant", "bee", "cat"}


def test_same_random_state_same_weights(blobs):
    X, y = blobs
    first, second = (KerasHead(units=8, epochs=2, random_state=3).fit(X, y) for _ in range(2))
    other = KerasHead(units=8, epochs=2, random_state=4).fit(X, y)
    assert all(np.array_equal(a, b) for a, b in zip(first.coefs_, second.coefs_))
    assert not np.array_equal(first.coefs_[0], other.coefs_[0])


def test_early_stopping_keeps_the_best_validation_epoch(blobs):
    X, y = blobs
    # A learning rate this high makes the validation loss bounce, so training stops early.
    head = KerasHead(units=32, epochs=40, learning_rate=0.5, patience=2, random_state=0)
    head.fit(X[:150], y[:150], validation_data=(X[150:], y[150:]))
    val_loss = head.history_["val_loss"]
    assert head.monitor_ == "val_loss" and set(head.history_) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert head.n_iter_ == len(val_loss) < 40 and head.n_iter_ == head.best_epoch_ + 2
    assert head.best_epoch_ == int(np.argmin(val_loss)) + 1
    # The weights kept are those of the best epoch: their validation loss is the minimum recorded.
    proba = head.predict_proba(X[150:])
    index = np.searchsorted(head.classes_, y[150:])
    loss = -np.mean(np.log(proba[np.arange(50), index]))
    assert loss == pytest.approx(min(val_loss), rel=1e-4)


def test_validation_fraction_is_held_out_or_training_loss_watched(blobs):
    X, y = blobs
    assert KerasHead(units=4, epochs=1, random_state=0).fit(X, y).monitor_ == "val_loss"
    assert KerasHead(units=4, epochs=1, validation_fraction=None, random_state=0).fit(X, y).monitor_ == "loss"
    one_each = KerasHead(units=4, epochs=1, random_state=0).fit(X[:4], ["a", "b", "c", "d"])
    assert one_each.monitor_ == "loss"  # a class of one row cannot be split


def test_bad_parameters_and_labels_are_explained(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="units == 0, must be >= 1"):
        KerasHead(units=0).fit(X, y)
    with pytest.raises(ValueError, match="dropout == 1.0, must be < 1.0"):
        KerasHead(dropout=1.0).fit(X, y)
    with pytest.raises(ValueError, match="'class_weight' parameter of KerasHead must be None, 'balanced' or a dict"):
        KerasHead(class_weight="even").fit(X, y)
    with pytest.raises(ValueError, match=r"validation_data holds labels not seen in training: \['dog'\]"):
        KerasHead(epochs=1).fit(X, y, validation_data=(X[:2], ["ant", "dog"]))


def test_a_fitted_keras_head_predicts_without_tensorflow(blobs, tmp_path):
    import skops.io

    X, y = blobs
    skops.io.dump(KerasHead(units=4, epochs=1, random_state=0).fit(X, y), tmp_path / "head.skops")
    np.save(tmp_path / "X.npy", X)
    script = (
        "import sys, numpy as np, skops.io\n"
        "from featx.heads import KerasHead\n"
        f"head = skops.io.load({str(tmp_path / 'head.skops')!r}, trusted=[KerasHead])\n"
        f"print(head.predict(np.load({str(tmp_path / 'X.npy')!r}))[:3])\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TensorFlow was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
