"""`Embedder`: a scikit-learn transformer from image paths to backbone vectors, through the cache."""

from __future__ import annotations

from dataclasses import fields

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from featx.backbones.applications import DEFAULT_BACKBONE
from featx.backbones.build import feature_dim
from featx.data.images import DEFAULT_MAX_PIXELS
from featx.errors import ImageDecodeError, OptionError
from featx.options import EmbedOptions


class Embedder(TransformerMixin, BaseEstimator):
    """Turn image file paths into feature vectors with a frozen backbone.

    ``make_pipeline(Embedder("MobileNetV2"), LogisticRegression())`` trains a classifier on image
    paths. Vectors go through the content-addressed feature cache, so refitting, cross-validation
    and grid searches compute each image once. Parameters are those of :func:`featx.embed`
    (:class:`featx.options.EmbedOptions`); ``cache_dir`` defaults to ``$FEATX_CACHE_DIR`` or
    ``.featx``. ``fit`` validates them and learns nothing from the images. Fitted: ``options_``,
    ``config_`` (the resolved backbone configuration) and ``feature_dim_``.
    """

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        *,
        weights: str | None = None,
        image_size: int | None = None,
        resize: str | None = None,
        pooling: str | None = None,
        preprocess: str | None = None,
        seed: int = 0,
        jpeg_draft: bool = False,
        precision: str = "float32",
        batch_size: int | None = None,
        workers: int | None = None,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        dtype: str | None = None,
        backend: str | None = None,
        engine: str = "local",
        address: str | None = None,
        gpus_per_worker: float = 0,
        cache_dir: str | None = None,
    ):
        self.backbone = backbone
        self.weights = weights
        self.image_size = image_size
        self.resize = resize
        self.pooling = pooling
        self.preprocess = preprocess
        self.seed = seed
        self.jpeg_draft = jpeg_draft
        self.precision = precision
        self.batch_size = batch_size
        self.workers = workers
        self.max_pixels = max_pixels
        self.dtype = dtype
        self.backend = backend
        self.engine = engine
        self.address = address
        self.gpus_per_worker = gpus_per_worker
        self.cache_dir = cache_dir

    def fit(self, X, y=None) -> Embedder:
        """Validate the parameters and resolve the backbone configuration."""
        _paths(X)
        self.options_ = EmbedOptions(**{f.name: getattr(self, f.name) for f in fields(EmbedOptions)})
        self.config_ = self.options_.resolve()
        self.feature_dim_ = feature_dim(self.config_)
        return self

    def transform(self, X) -> np.ndarray:
        """(n_images, feature_dim_) float32 vectors for a sequence of image paths."""
        from featx.engine.files import embed_files

        check_is_fitted(self)
        paths = _paths(X)
        result = embed_files(paths, self.config_, self.options_.run_options(), cache=self.cache_dir)
        if not result.ok.all():
            bad = result.skipped[0] if result.skipped else None
            detail = f": {bad.path} ({bad.reason})" if bad else ""
            raise ImageDecodeError(f"{(~result.ok).sum()} of {len(paths)} images could not be embedded{detail}.")
        return result.X

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """``<backbone>0`` ... ``<backbone>{D-1}``, one name per vector component."""
        check_is_fitted(self)
        prefix = self.config_.display_name.lower()
        return np.asarray([f"{prefix}{i}" for i in range(self.feature_dim_)], dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.requires_fit = True
        return tags


def _paths(X) -> list[str]:
    """The image paths of ``X``: a 1-D sequence (or a single column) of path strings."""
    array = np.asarray(X, dtype=object)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1 or not all(isinstance(p, str) or hasattr(p, "__fspath__") for p in array):
        raise OptionError("{param} must be a sequence of image file paths.", param="X")
    return [str(p) for p in array]
