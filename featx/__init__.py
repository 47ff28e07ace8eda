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



# Names served on first use, so that `import featx` stays fast (scikit-learn, and TensorFlow for
# fine-tuning, load only when asked for): name -> module that defines it.
_LAZY = {
    "Embedder": "featx.embedder",
    **dict.fromkeys(
        ("fit_head", "load_head", "list_heads", "make_head", "evaluate_head", "predict_images",
         "compare_heads", "Head", "KerasHead", "Evaluation", "Predictions"),
        "featx.heads",
    ),
    "fine_tune": "featx.finetune",
    "FineTuneReport": "featx.finetune",
    "export": "featx.exporter",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'featx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


try:
    __version__ = _metadata.version("featx")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0"

__all__ = [
    *_LAZY,
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
