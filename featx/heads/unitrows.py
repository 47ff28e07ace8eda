"""`UnitRows`: rows scaled to unit length in float64, the k-NN head's first step.

Cosine distance is blind to a row's length, but scikit-learn's, computed in the input's dtype,
is not blind to its size: it treats a float32 row whose norm is below ~1e-6 (10 float32 epsilons)
as the zero vector, so every such row is at distance 1 from every other and k-NN predicts one
class for all. Randomly initialised backbones give exactly such rows (norms around 1e-9). This
step divides each row by its largest absolute value, then by its length, in float64: any row that
is not all zeros becomes a unit vector, whatever its scale.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data


class UnitRows(TransformerMixin, BaseEstimator):
    """Scale every row to unit Euclidean length, in float64 (an all-zero row stays zero)."""

    def fit(self, X, y=None):
        validate_data(self, X, dtype=[np.float64, np.float32])
        self.fitted_ = True
        return self

    def transform(self, X) -> np.ndarray:
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, dtype=np.float64, copy=True)
        peak = np.abs(X).max(axis=1, keepdims=True)
        X /= np.where(peak > 0, peak, 1.0)
        norm = np.sqrt(np.einsum("ij,ij->i", X, X))[:, None]
        return X / np.where(norm > 0, norm, 1.0)
