"""Importing TensorFlow/Keras lazily and quietly, only on the paths that need them.

TensorFlow costs seconds to import and prints C++ log lines at import; featx imports it only when it
must run a backbone, with Keras on the TensorFlow backend.
"""

from __future__ import annotations

import contextlib
import os
import sys
from types import ModuleType

from featx.errors import FeatxError


@contextlib.contextmanager
def _stderr_silenced():
    """Silence file descriptor 2 (the C++ logs TensorFlow prints while it loads) unless debugging."""
    if os.environ.get("FEATX_DEBUG") or not hasattr(sys.stderr, "fileno"):
        yield
        return
    try:
        fd = sys.stderr.fileno()
    except (OSError, ValueError):  # pytest capture or another stream without a descriptor
        yield
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)


def import_keras() -> tuple[ModuleType, ModuleType]:
    """Return ``(tensorflow, keras)``, requiring Keras 3 on the TensorFlow backend."""
    already = "tensorflow" in sys.modules
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ log noise; FEATX_DEBUG=1 and this env show it
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    with contextlib.nullcontext() if already else _stderr_silenced():
        import keras
        import tensorflow as tf
    if keras.backend.backend() != "tensorflow":
        raise FeatxError(
            f"featx runs backbones on Keras' TensorFlow backend, but KERAS_BACKEND is "
            f"{keras.backend.backend()!r}. Unset KERAS_BACKEND or set it to 'tensorflow'."
        )
    return tf, keras


def keras_cache_dir() -> str:
    """Where Keras keeps downloaded weights (``$KERAS_HOME/models``, default ``~/.keras/models``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")
