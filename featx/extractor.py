"""A frozen backbone as one compiled function: raw 0–255 RGB batch in, pooled vectors out.

The family's ``preprocess_input`` (as the layers of :mod:`featx.preprocessing`) runs inside the compiled function, so no caller can forget it or
apply it twice. Batches always have the same shape (the last one is padded), so the function is
traced once; ``model.predict`` in a loop would pay its per-call overhead on every batch.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Iterator

import numpy as np

from featx._tf import import_keras, keras_cache_dir
from featx.backbones import get_backbone
from featx.config import EmbedConfig
from featx.errors import FeatxError, WeightsUnavailableError
from featx.options import check_positive
from featx.preprocessing import preprocess, preprocessing_layers


class FeatureExtractor:
    """Builds the backbone of an :class:`EmbedConfig` once and maps image batches to vectors."""

    def __init__(self, config: EmbedConfig, batch_size: int = 32):
        check_positive("batch_size", batch_size)
        self.config = config
        self.batch_size = batch_size
        tf, _ = import_keras()
        self.model = build_backbone(config)
        layers = preprocessing_layers(config.preprocessing)
        size = config.input_size
        spec = tf.TensorSpec([batch_size, size, size, 3], tf.float32)
        model = self.model
        self._compiled = tf.function(
            lambda images: model(preprocess(layers, images), training=False),
            input_signature=[spec],
            reduce_retracing=True,
        )
        self.feature_dim = int(self.model.output_shape[-1])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Vectors (n, feature_dim) float32 for ``n <= batch_size`` images (n, H, W, 3) in 0–255."""
        count = len(images)
        if count > self.batch_size:
            raise ValueError(f"got {count} images for a batch of {self.batch_size}")
        if count < self.batch_size:
            padding = np.zeros((self.batch_size - count, *images.shape[1:]), np.float32)
            images = np.concatenate([images, padding])
        vectors = self._compiled(np.asarray(images, np.float32)).numpy()
        return vectors[:count].astype(np.float32, copy=False)


def build_backbone(config: EmbedConfig):
    """The headless Keras model of ``config`` whose output is the pooled (batch, D) vector."""
    _, keras = import_keras()
    if config.is_custom:
        return _load_custom(config)
    spec = get_backbone(config.backbone)
    constructor = getattr(keras.applications, spec.name)
    weights: str | None
    if config.weights == "imagenet":
        weights = "imagenet"
    elif config.weights.startswith("none:"):
        weights = None
    else:
        weights = config.source_file()
    kwargs = dict(
        include_top=False,
        weights=weights,
        input_shape=(config.input_size, config.input_size, 3),
        pooling=config.pooling,
    )
    with _seeded(config.seed):
        try:
            model = constructor(**kwargs)
        except ValueError as exc:  # Keras validates input sizes and weight files this way
            raise FeatxError(f"Cannot build {spec.name}: {_first_line(exc)}") from exc
        except Exception as exc:  # Keras' get_file raises a bare Exception when a download fails
            if weights == "imagenet" and "URL fetch failure" in str(exc):
                raise _download_error(spec.name, exc) from exc
            raise
    model.trainable = False
    return model


def _load_custom(config: EmbedConfig):
    _, keras = import_keras()
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
    outputs = model(inputs, training=False)
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
    _, keras = import_keras()
    py_state, np_state = random.getstate(), np.random.get_state()
    keras.utils.set_random_seed(seed)
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
