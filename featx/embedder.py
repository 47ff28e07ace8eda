"""`Embedder`: a scikit-learn transformer from image paths to backbone vectors, through the cache."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from featx.api import DEFAULT_BACKBONE, embed_paths
from featx.config import EmbedConfig, resolve_config
from featx.errors import FeatxError


class Embedder(TransformerMixin, BaseEstimator):
    """Turn image file paths into feature vectors with a frozen backbone.

    ``make_pipeline(Embedder("MobileNetV2"), LogisticRegression())`` trains a classifier on image
    paths. Vectors go through the content-addressed feature cache, so refitting, cross-validation
    and grid searches compute each image once. The backbone is built on first use, not in
    ``__init__`` or ``fit``, so cloning is free.

    Parameters mirror ``featx embed``; ``cache_dir`` defaults to ``$FEATX_CACHE_DIR`` or ``.featx``.
    """

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        *,
        weights: str | None = None,
        image_size: int | None = None,
        resize: str = "stretch",
        pooling: str = "avg",
        preprocess: str | None = None,
        seed: int = 0,
        batch_size: int = 32,
        cache_dir: str | None = None,
    ):
        self.backbone = backbone
        self.weights = weights
        self.image_size = image_size
        self.resize = resize
        self.pooling = pooling
        self.preprocess = preprocess
        self.seed = seed
        self.batch_size = batch_size
        self.cache_dir = cache_dir

    def fit(self, X, y=None) -> "Embedder":
        """Validate the configuration; nothing is learned from the images."""
        self.config_: EmbedConfig = resolve_config(
            self.backbone, weights=self.weights, image_size=self.image_size, resize=self.resize,
            pooling=self.pooling, preprocess=self.preprocess, seed=self.seed,
        )
        self.n_features_in_ = 1
        return self

    def transform(self, X) -> np.ndarray:
        """(n_images, feature_dim) float32 vectors for a sequence of image paths."""
        check_is_fitted(self, "config_")
        paths = [str(p) for p in np.asarray(X, dtype=object).ravel()]
        result = embed_paths(paths, self.config_, cache_dir=self.cache_dir, batch_size=self.batch_size)
        if not result.ok.all():
            bad = result.skipped[0] if result.skipped else None
            detail = f": {bad.path} ({bad.reason})" if bad else ""
            raise FeatxError(f"{(~result.ok).sum()} of {len(paths)} images could not be embedded{detail}.")
        self.feature_dim_ = int(result.X.shape[1])
        return result.X

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        check_is_fitted(self, "config_")
        width = getattr(self, "feature_dim_", None)
        if width is None:
            raise FeatxError("The feature width is known after the first transform.")
        return np.asarray([f"{self.config_.display_name.lower()}{i}" for i in range(width)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.requires_fit = True
        return tags
