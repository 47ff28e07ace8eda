"""The warm start's temperature: chosen on validation labels, without TensorFlow (fast)."""

from __future__ import annotations

import numpy as np

from featx.model.warmstart import choose_temperature


def _cross_entropy(probabilities, labels, temperature):
    z = np.log(probabilities) / temperature
    z -= z.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    return -np.log(p[np.arange(len(labels)), labels]).mean()


def _predictions(confidence: float, correct: float, n: int = 400, k: int = 4, seed: int = 0):
    """Probabilities that put ``confidence`` on one class, right for a ``correct`` share of the rows."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, k, n)
    predicted = np.where(rng.random(n) < correct, labels, (labels + rng.integers(1, k, n)) % k)
    proba = np.full((n, k), (1 - confidence) / (k - 1))
    proba[np.arange(n), predicted] = confidence
    return proba, labels


def test_a_saturated_head_is_softened_and_its_validation_loss_falls():
    proba, labels = _predictions(confidence=1 - 1e-6, correct=0.8)  # a head at training loss ~0
    temperature = choose_temperature(proba, labels)
    assert temperature > 4
    assert _cross_entropy(proba, labels, temperature) < 0.5 * _cross_entropy(proba, labels, 1.0)


def test_a_calibrated_head_keeps_its_temperature_and_an_unsure_one_is_sharpened():
    proba, labels = _predictions(confidence=0.8, correct=0.8)
    assert 0.8 <= choose_temperature(proba, labels) <= 1.25
    proba, labels = _predictions(confidence=0.4, correct=0.95)
    assert choose_temperature(proba, labels) < 1
    assert choose_temperature(proba[:0], labels[:0]) == 1.0
