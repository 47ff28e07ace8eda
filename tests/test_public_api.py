"""The public Python API is exactly ``featx.__all__``: it grows only on purpose, and importing it stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.integration
def test_public_api_is_pinned_and_import_stays_light():
    import featx

    assert set(featx.__all__) == {
        "__version__", "embed", "load_features", "load_views", "Features", "Embedder", "list_backbones", "get_backbone",
        "list_heads", "make_head", "fit_head", "load_head", "compare_heads", "evaluate_head", "predict_images",
        "Head", "fine_tune", "export", "inspect", "search", "FeatxError",
    }
    assert len(featx.__all__) == len(set(featx.__all__))
    assert all(getattr(featx, name) is not None for name in featx.__all__)
    code = "import sys, featx; assert 'tensorflow' not in sys.modules and 'sklearn' not in sys.modules; " \
           "assert callable(featx.export) and callable(featx.fine_tune); " \
           "import featx.search.exact; assert callable(featx.search)"
    subprocess.run([sys.executable, "-c", code], check=True)
