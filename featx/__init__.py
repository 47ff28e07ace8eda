"""featx: transfer learning on images, fast.

Embed a dataset once with a frozen Keras backbone into an HDF5 feature cache, then fit heads on
the cached vectors in seconds. Importing featx does not import TensorFlow; only embedding does.
"""

from __future__ import annotations

from importlib import metadata as _metadata

from featx.api import (
    DEFAULT_BACKBONE,
    PathEmbedding,
    embed,
    embed_paths,
    embed_to_cache,
    embed_with_report,
)
from featx.backbones import BackboneSpec, get_backbone, list_backbones
from featx.config import EmbedConfig, resolve_config
from featx.errors import CacheError, FeatxError, ImageDecodeError, WeightsUnavailableError
from featx.features import Features, SkippedImage, load_features



def __getattr__(name: str):
    # Embedder subclasses scikit-learn's BaseEstimator; import it only when asked for, so that
    # `import featx` stays fast for the CLI.
    if name == "Embedder":
        from featx.embedder import Embedder

        return Embedder
    raise AttributeError(f"module 'featx' has no attribute {name!r}")


try:
    __version__ = _metadata.version("featx")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    "DEFAULT_BACKBONE",
    "BackboneSpec",
    "CacheError",
    "EmbedConfig",
    "Embedder",
    "FeatxError",
    "Features",
    "ImageDecodeError",
    "PathEmbedding",
    "SkippedImage",
    "WeightsUnavailableError",
    "__version__",
    "embed",
    "embed_paths",
    "embed_to_cache",
    "embed_with_report",
    "get_backbone",
    "list_backbones",
    "load_features",
    "resolve_config",
]
