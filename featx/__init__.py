"""featx: transfer learning on images, fast.

Embed a dataset once with a frozen Keras backbone into an HDF5 feature cache, then fit heads on
the cached vectors in seconds. Importing featx does not import TensorFlow; only embedding does.

The public API is the names in ``__all__`` (a test pins them); everything else lives in modules
whose names say what they hold (``featx.options``, ``featx.heads``, ``featx.cache``, ...).
"""

from __future__ import annotations

from featx._versions import featx_version as _featx_version
from featx.api import embed
from featx.backbones.applications import get_backbone, list_backbones
from featx.errors import FeatxError
from featx.features.vectors import Features, load_features
from featx.search import search  # eager: importing the package featx.search would else shadow the function

# Names served on first use, so that `import featx` stays fast (scikit-learn, and TensorFlow for
# fine-tuning, load only when asked for): name -> module that defines it.
_LAZY = {
    "Embedder": "featx.embedder",
    **dict.fromkeys(
        ("Head", "list_heads", "make_head", "fit_head", "load_head", "compare_heads", "evaluate_head",
         "predict_images"),
        "featx.heads",
    ),
    "load_views": "featx.features.views",
    "fine_tune": "featx.model.finetune",
    "export": "featx.model.export",
    "inspect": "featx.inspection",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'featx' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__version__ = _featx_version()

__all__ = [
    "__version__",
    # embed images into the feature cache, read it back
    "embed",
    "load_features",
    "load_views",
    "Features",
    "Embedder",
    "list_backbones",
    "get_backbone",
    # heads on cached vectors
    "list_heads",
    "make_head",
    "fit_head",
    "load_head",
    "compare_heads",
    "evaluate_head",
    "predict_images",
    "Head",
    # one deployable model
    "fine_tune",
    "export",
    # the cached images nearest to an image, or shared with another cache
    "search",
    # what is wrong with a dataset, from its cached vectors
    "inspect",
    # every error featx raises subclasses FeatxError and a built-in (see featx.errors)
    "FeatxError",
]
