"""A frozen backbone as one compiled function: raw 0–255 RGB batch in, pooled vectors out.

The family's ``preprocess_input`` (as the layers of :mod:`featx.preprocessing`) runs inside the
compiled function, so no caller can forget it or apply it twice. Batches always have the same
shape (the last one is padded), so the function is traced once; ``model.predict`` in a loop would
pay its per-call overhead on every batch. Each Keras backend compiles in its own way (below).
"""

from __future__ import annotations

import contextlib
import random
import re
import warnings
from collections.abc import Iterator

import numpy as np

from featx.backend import BACKENDS, DEFAULT_BACKEND, import_keras, keras_cache_dir, resolve_backend, set_random_seed
from featx.backbones import get_backbone
from featx.config import EmbedConfig
from featx.errors import FeatxError, OptionError, WeightsUnavailableError
from featx.options import check_positive
from featx.preprocessing import preprocess, preprocessing_layers


class FeatureExtractor:
    """Builds the backbone of an :class:`EmbedConfig` once and maps image batches to vectors.

    ``backend`` is the Keras backend to run on (see :func:`featx.backend.resolve_backend`); the
    forward pass is that backend's compiled function: ``tf.function`` on TensorFlow, ``jax.jit``
    over the model's ``stateless_call`` on JAX, an eager call without autograd on PyTorch.
    """

    def __init__(self, config: EmbedConfig, batch_size: int = 32, backend: str | None = None):
        check_positive("batch_size", batch_size)
        self.config = config
        self.batch_size = batch_size
        self.backend = resolve_backend(backend)
        keras = import_keras(self.backend)
        self.model = build_backbone(config, self.backend)
        size = config.input_size
        inputs = keras.Input((size, size, 3), batch_size=batch_size)
        outputs = self.model(preprocess(preprocessing_layers(config.preprocessing), inputs), training=False)
        self._forward = _COMPILERS[self.backend](keras.Model(inputs, outputs), (batch_size, size, size, 3))
        self.feature_dim = int(self.model.output_shape[-1])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Vectors (n, feature_dim) float32 for ``n <= batch_size`` images (n, H, W, 3) in 0–255."""
        count = len(images)
        if count > self.batch_size:
            raise ValueError(f"got {count} images for a batch of {self.batch_size}")
        if count < self.batch_size:
            padding = np.zeros((self.batch_size - count, *images.shape[1:]), np.float32)
            images = np.concatenate([images, padding])
        vectors = self._forward(np.asarray(images, np.float32))
        return vectors[:count].astype(np.float32, copy=False)


def _tensorflow_forward(model, shape):
    import tensorflow as tf  # already loaded: Keras runs on it

    compiled = tf.function(lambda images: model(images, training=False),
                           input_signature=[tf.TensorSpec(shape, tf.float32)], reduce_retracing=True)
    return lambda images: compiled(images).numpy()


def _jax_forward(model, shape):
    import jax

    state = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])
    compiled = jax.jit(lambda trainable, frozen, images: model.stateless_call(
        trainable, frozen, images, training=False)[0])
    return lambda images: np.asarray(compiled(*state, images))


def _torch_forward(model, shape):
    import torch
    from keras import ops

    model.eval()

    def forward(images):
        with torch.inference_mode():
            return ops.convert_to_numpy(model(ops.convert_to_tensor(images), training=False))

    return forward


_COMPILERS = {"tensorflow": _tensorflow_forward, "jax": _jax_forward, "torch": _torch_forward}


def build_backbone(config: EmbedConfig, backend: str | None = None):
    """The headless Keras model of ``config`` whose output is the pooled (batch, D) vector, on ``backend``."""
    keras = import_keras(backend)
    if config.is_custom:
        return _load_custom(config)
    spec = get_backbone(config.backbone)
    check_runs_on(spec, keras.backend.backend())
    constructor = getattr(keras.applications, spec.name)
    weights: str | None
    if config.weights == "imagenet":
        weights = "imagenet"
    elif config.weights.startswith("none:"):
        _check_random_weights(config.weights, keras.backend.backend())
        weights = None
    else:
        weights = config.source_file()
    kwargs = dict(
        include_top=False,
        weights=weights,
        input_shape=(config.input_size, config.input_size, 3),
        pooling=config.pooling,
    )
    with _seeded(config.seed), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = constructor(**kwargs)
        except ValueError as exc:  # Keras validates input sizes and weight files this way
            # its warnings (one per layer of a weights file of another architecture) say no more
            raise FeatxError(f"Cannot build {spec.name}: {_first_line(exc)}") from exc
        except Exception as exc:  # Keras' get_file raises a bare Exception when a download fails
            if weights == "imagenet" and "URL fetch failure" in str(exc):
                raise _download_error(spec.name, exc) from exc
            raise
    for warning in caught:  # the build succeeded: its warnings are news
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    model.trainable = False
    return model


def check_runs_on(spec, backend: str) -> None:
    """Refuse a registry backbone on a backend that computes it wrongly, naming those that work."""
    if backend in spec.wrong_on:
        works = " or ".join(b for b in BACKENDS if b not in spec.wrong_on)
        raise OptionError(
            f"{{param}} {backend}: Keras computes {spec.name} wrongly on {backend} (a Keras bug); run it on {works}.",
            param="backend",
        )


def _check_random_weights(identity: str, backend: str) -> None:
    """Random weights (``none:seed=N``) are drawn by the backend's own generator: another backend's differ."""
    made_on = identity.partition(":backend=")[2] or DEFAULT_BACKEND
    if made_on != backend:
        raise OptionError(
            f"{{param}} {backend}: these random weights ({identity}) were drawn on {made_on}, and each backend "
            f"draws its own; run on {made_on}.", param="backend",
        )


def _load_custom(config: EmbedConfig):
    keras = import_keras()
    path = config.source_file()
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - any loading failure is the file's fault here
        raise FeatxError(
            f"{{param}}: {config.model_path!r} could not be loaded as a Keras model: {_first_line(exc)}",
            param="backbone",
        ) from exc
    if len(model.inputs) != 1 or model.inputs[0].shape[-1] != 3:
        raise FeatxError(
            f"{{param}}: {config.model_path!r} must take one RGB image input (..., 3); "
            f"its inputs are {[tuple(i.shape) for i in model.inputs]}.", param="backbone",
        )
    inputs = keras.Input((config.input_size, config.input_size, 3))
    try:
        outputs = model(inputs, training=False)
    except ValueError as exc:  # a fixed input size other than the one asked
        raise OptionError(f"{{param}} {config.input_size} does not fit {config.model_path!r}: "
                          f"{_first_line(exc)[:200].rstrip('.')}. Give the size it takes, or omit {{param}}.",
                          param="image_size") from None
    if len(outputs.shape) == 4:
        pool = keras.layers.GlobalAveragePooling2D if config.pooling == "avg" else keras.layers.GlobalMaxPooling2D
        outputs = pool()(outputs)
    elif len(outputs.shape) != 2:
        raise FeatxError(
            f"{{param}}: {config.model_path!r} outputs shape {tuple(outputs.shape)}; featx needs a "
            "4-D feature map (pooled) or a 2-D vector.", param="backbone",
        )
    wrapped = keras.Model(inputs, outputs, name=f"featx_{model.name}")
    wrapped.trainable = False
    return wrapped


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed Keras' initialisers for reproducible random weights, then restore Python and NumPy."""
    py_state, np_state = random.getstate(), np.random.get_state()
    set_random_seed(seed)
    try:
        yield
    finally:
        random.setstate(py_state)
        np.random.set_state(np_state)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _download_error(name: str, exc: BaseException) -> WeightsUnavailableError:
    match = re.search(r"(https?://\S+?):? ", str(exc) + " ")
    url = match.group(1) if match else "(unknown URL)"
    file_name = url.rsplit("/", 1)[-1]
    reason = str(exc).split(" -- ", 1)[-1].strip()
    return WeightsUnavailableError(
        f"Could not download the ImageNet weights for {name} ({reason}). Keras wanted {file_name} "
        f"from {url}: fetch it on a machine with internet, then run 'featx weights import {file_name}', "
        f"which checks it and puts it in {keras_cache_dir()}/ ('featx weights list' shows every "
        "backbone's file); or set {param} to a weights file (or to none for random weights).",
        reason=reason, param="weights",
    )
