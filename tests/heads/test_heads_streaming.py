"""Heads on caches bigger than RAM: the sgd head streams a lazy X in mini-batches; the other heads
say how much they load into memory before they start."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

import featx.features.vectors
import featx.heads.fit
from featx.errors import MemoryUseWarning
from featx.features.vectors import LazyVectors
from featx.heads import compare_heads, fit_head
from tests.heads.test_heads import blob_features


@pytest.fixture
def lazy_blobs(monkeypatch):
    """Blob features whose X is a LazyVectors over an in-memory array; ``reads`` records each read's rows."""
    features = blob_features(n=600)
    reads: list[int] = []

    def read_vectors(index, rows, dtype="float32"):
        reads.append(len(rows))
        return index.array[rows].astype(dtype)

    monkeypatch.setattr(featx.features.vectors, "read_vectors", read_vectors)
    index = SimpleNamespace(array=np.asarray(features.X), attrs={"feature_dim": features.feature_dim})
    return replace(features, X=LazyVectors(index, np.arange(len(features.y)))), reads


def test_sgd_streams_a_lazy_cache_in_batches_and_matches_logreg(lazy_blobs, monkeypatch):
    features, reads = lazy_blobs
    monkeypatch.setattr(featx.heads.fit, "STREAM_BATCH", 64)
    notes: list[str] = []
    head = fit_head(features, "sgd", note=notes.append)
    assert reads and max(reads) <= 64 and not notes  # never all 600 rows at once, nothing announced
    logreg = fit_head(blob_features(n=600), "logreg")
    assert head.metrics["test"]["accuracy"] >= logreg.metrics["test"]["accuracy"] - 0.02
    assert head.metrics["test"]["accuracy"] >= 0.95


def test_sgd_in_memory_fits_like_any_pipeline():
    head = fit_head(blob_features(), "sgd")
    assert head.metrics["test"]["accuracy"] >= 0.95


def test_a_head_that_loads_everything_says_how_much_first(lazy_blobs, monkeypatch):
    features, reads = lazy_blobs
    notes: list[str] = []
    monkeypatch.setattr(featx.heads.fit, "physical_memory", lambda: 10**12)
    fit_head(features, "logreg", note=notes.append)
    assert notes == ["loading 600 vectors (0.0 MB) into memory for the logreg head"]
    assert reads[0] == 600


def test_loading_more_than_a_quarter_of_the_ram_warns(lazy_blobs, monkeypatch):
    features, _ = lazy_blobs
    monkeypatch.setattr(featx.heads.fit, "physical_memory", lambda: 4 * features.X.nbytes - 1)
    with pytest.warns(MemoryUseWarning, match="loading 600 vectors .* more than 25%"):
        fit_head(features, "knn")


def test_compare_loads_a_lazy_cache_once(lazy_blobs):
    features, reads = lazy_blobs
    notes: list[str] = []
    rows = compare_heads([features], ["sgd", "logreg", "knn"], note=notes.append)
    assert {r["head"] for r in rows} == {"sgd", "logreg", "knn"} and len(notes) == 1


def test_sgd_probabilities_never_saturate_into_ties():
    """SGD's large weights push one-vs-rest decision values into the thousands, where scikit-learn's
    normalised sigmoids are exact ties at 1.0; the head's softmax keeps the best class on top."""
    rng = np.random.default_rng(0)
    y = rng.integers(0, 5, 1000)
    X = np.maximum(rng.normal(0.0, 0.3, (5, 256))[y] + rng.normal(0.0, 1.0, (1000, 256)), 0)
    features = replace(blob_features(n=1000, dim=256), X=X.astype(np.float32), y=y,
                       classes=tuple("abcde"))
    head = fit_head(features, "sgd", alpha=1e-6, epochs=5)
    X_test = features.X[np.isin(features.ids, head.split["test"])]
    sklearn_proba = head.estimator.predict_proba(X_test)
    assert np.mean((sklearn_proba == sklearn_proba.max(axis=1, keepdims=True)).sum(axis=1) > 1) > 0.1  # ties
    assert np.array_equal(head.predict(X_test), np.asarray(head.classes)[head.estimator.predict(X_test)])
    assert np.allclose(head.predict_proba(X_test).sum(axis=1), 1)
