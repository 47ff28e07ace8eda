"""The one door to Keras: which backend it runs on (TensorFlow, JAX or PyTorch), chosen before import.

Keras 3 fixes its backend when it is first imported, once per process. featx chooses it there:
the ``backend`` a caller passes, else ``KERAS_BACKEND``, else TensorFlow (the default install and
the fastest on a CPU). Asking for another backend once Keras runs is an error that says so, in one
line. TensorFlow itself is imported only on the TensorFlow backend or by the paths that need it
(SavedModel and TFLite export): on JAX or PyTorch no featx code path imports it. Nothing here
imports Keras at import time.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import random
import sys
from collections.abc import Iterator
from types import ModuleType

import numpy as np

from featx.errors import FeatxError, MissingDependencyError, OptionError

BACKENDS = ("tensorflow", "jax", "torch")
DEFAULT_BACKEND = "tensorflow"
_MODULE = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}  # what each backend imports
_EXTRA = {"tensorflow": "featx", "jax": "featx[jax]", "torch": "featx[torch]"}  # what installs it


def check_backend(backend: str | None) -> None:
    """Raise :class:`OptionError` naming ``backend`` unless it is None or one of :data:`BACKENDS`."""
    if backend is not None and backend not in BACKENDS:
        raise OptionError(f"{{param}} must be one of {', '.join(BACKENDS)}; got {backend!r}.", param="backend")


def loaded_backend() -> str | None:
    """The backend Keras already runs on in this process, or None if Keras is not imported yet."""
    keras = sys.modules.get("keras")
    if keras is None or not hasattr(keras, "backend"):
        return None
    return keras.backend.backend()


def resolve_backend(backend: str | None = None) -> str:
    """The backend a run uses: ``backend``, else the one Keras runs on, else ``KERAS_BACKEND``, else
    TensorFlow. Fails in one line if ``backend`` differs from the one Keras already runs on."""
    check_backend(backend)
    loaded = loaded_backend()
    if backend is None:
        backend = loaded or os.environ.get("KERAS_BACKEND") or DEFAULT_BACKEND
        if backend not in BACKENDS:
            raise OptionError(f"KERAS_BACKEND must be one of {', '.join(BACKENDS)}; got {backend!r}.")
        return backend
    if loaded is not None and loaded != backend:
        raise OptionError(
            f"{{param}} is {backend!r}, but Keras already runs on {loaded!r} in this process (Keras fixes its "
            f"backend at import): start a new process with KERAS_BACKEND={backend}, or drop {{param}}.",
            param="backend",
        )
    return backend


def require_installed(backend: str) -> None:
    """Raise :class:`MissingDependencyError` (what to pip install) unless ``backend``'s library is there."""
    if importlib.util.find_spec(_MODULE[backend]) is None:
        raise MissingDependencyError(
            f"{{param}} {backend} needs {_MODULE[backend]}, which is not installed: pip install '{_EXTRA[backend]}'.",
            param="backend",
        )


def import_keras(backend: str | None = None) -> ModuleType:
    """Keras 3 on ``backend`` (see :func:`resolve_backend`), imported quietly the first time."""
    backend = resolve_backend(backend)
    if loaded_backend() is None:
        require_installed(backend)
        os.environ["KERAS_BACKEND"] = backend  # read by Keras at import; overrides ~/.keras/keras.json
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # C++ log noise; FEATX_DEBUG=1 shows it
        with _stderr_silenced():
            import keras
        if keras.backend.backend() != backend:  # a Keras imported elsewhere, half-way, or another config
            raise FeatxError(f"Keras started on {keras.backend.backend()!r}, not {backend!r}; set KERAS_BACKEND={backend}.")
    import keras

    return keras


def set_random_seed(seed: int) -> None:
    """``keras.utils.set_random_seed``, without importing TensorFlow on JAX or PyTorch.

    Keras' function imports TensorFlow whenever it is installed, to seed ``tf.random``; elsewhere
    featx hides it for that call, so Keras also stops offering TensorFlow for the rest of the process.
    """
    keras = import_keras()
    if keras.backend.backend() == "tensorflow" or "tensorflow" in sys.modules:
        keras.utils.set_random_seed(seed)
        return
    sys.modules["tensorflow"] = None  # an import of it raises ImportError: Keras takes it as absent
    try:
        keras.utils.set_random_seed(seed)
    finally:
        del sys.modules["tensorflow"]


def import_keras_hub(backend: str | None = None) -> ModuleType:
    """keras-hub on the Keras of ``backend``; a one-line error naming the extra without it.

    keras-hub imports TensorFlow (and tensorflow-text) whenever they are installed; on JAX or
    PyTorch featx hides them for that import, as in :func:`set_random_seed`, so the transformer
    backbones also keep TensorFlow out of those processes (keras-hub treats it as absent).
    """
    import_keras(backend)  # Keras first, on the chosen backend
    if "keras_hub" in sys.modules:
        return sys.modules["keras_hub"]
    if importlib.util.find_spec("keras_hub") is None:
        raise MissingDependencyError(
            '{param}: transformer backbones need keras-hub, which is not installed: pip install "featx[hub]".',
            param="backbone",
        )
    with tensorflow_hidden(), _stderr_silenced():
        import keras_hub
    return keras_hub


@contextlib.contextmanager
def tensorflow_hidden():
    """On JAX or PyTorch, while TensorFlow is not imported: ``import tensorflow`` (and tensorflow-text)
    fails inside this block, so a library that uses TensorFlow whenever it is installed (keras-hub,
    also when it loads a preset) takes it as absent. On TensorFlow it does nothing."""
    keras = sys.modules.get("keras")
    on_tensorflow = keras is None or not hasattr(keras, "backend") or keras.backend.backend() == "tensorflow"
    hidden = [] if on_tensorflow or "tensorflow" in sys.modules else [
        name for name in ("tensorflow", "tensorflow_text") if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # an import of it raises ImportError
    try:
        yield
    finally:
        for name in hidden:
            sys.modules.pop(name, None)


def import_tensorflow(what: str) -> ModuleType:
    """TensorFlow, for ``what`` (e.g. "SavedModel export") that only it can do; a one-line error without it."""
    if importlib.util.find_spec("tensorflow") is None:
        raise MissingDependencyError(f"{what} needs TensorFlow, which is not installed: pip install tensorflow.")
    with contextlib.nullcontext() if "tensorflow" in sys.modules else _stderr_silenced():
        import tensorflow as tf
    return tf


@contextlib.contextmanager
def _stderr_silenced():
    """Silence file descriptor 2 (the C++ logs TensorFlow and XLA print while they load) unless debugging."""
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


def keras_cache_dir() -> str:
    """Where Keras keeps downloaded weights (``$KERAS_HOME/models``, default ``~/.keras/models``)."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models")


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed Keras' initialisers for reproducible random weights, then restore Python and NumPy."""
    py_state, np_state = random.getstate(), np.random.get_state()
    set_random_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)
