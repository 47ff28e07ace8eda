"""A frozen backbone as one compiled function: raw 0–255 RGB batch in, pooled vectors out.

The family's ``preprocess_input`` (as the layers of :mod:`featx.preprocessing`) runs inside the
compiled function, so no caller can forget it or apply it twice. Batches always have the same
shape (the last one is padded), so the function is traced once; ``model.predict`` in a loop would
pay its per-call overhead on every batch. Each Keras backend compiles in its own way (below).

On a GPU the batch size, when not given, is the largest that fits (from :data:`MAX_BATCH_SIZE`
down, halving on out-of-memory), and :meth:`FeatureExtractor.stream` copies the next batch to the
device while the current one computes. The backbone runs at the configuration's ``precision``
(a Keras dtype policy, only while it is built); its vectors are always returned as float32.
"""

from __future__ import annotations

import contextlib
import random
import re
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import numpy as np

from featx.backend import (BACKENDS, DEFAULT_BACKEND, import_keras, import_keras_hub, keras_cache_dir, resolve_backend,
                           set_random_seed, tensorflow_hidden)
from featx.backbones import get_backbone
from featx.config import EmbedConfig
from featx.errors import FeatxError, OptionError, WeightsUnavailableError
from featx.hub import uses_keras_hub
from featx.options import check_positive
from featx.preprocessing import preprocess, preprocessing_layers

T = TypeVar("T")
CPU_BATCH_SIZE = 32  # on a CPU a larger batch is not faster, only uses more memory
MAX_BATCH_SIZE = 512  # on a GPU: past this the backbone is no faster per image, the buffers only larger


class FeatureExtractor:
    """Builds the backbone of an :class:`EmbedConfig` once and maps image batches to vectors.

    ``backend`` is the Keras backend to run on (see :func:`featx.backend.resolve_backend`); the
    forward pass is that backend's compiled function: ``tf.function`` on TensorFlow, ``jax.jit``
    over the model's ``stateless_call`` on JAX, an eager call without autograd on PyTorch.
    """

    def __init__(self, config: EmbedConfig, batch_size: int | None = None, backend: str | None = None):
        if batch_size is not None:
            check_positive("batch_size", batch_size)
        self.config = config
        self.backend = resolve_backend(backend)
        keras = import_keras(self.backend)
        self.model = build_backbone(config, self.backend)
        size = config.input_size
        inputs = keras.Input((size, size, 3))
        outputs = self.model(preprocess(preprocessing_layers(config.preprocessing), inputs), training=False)
        network = keras.Model(inputs, keras.ops.cast(outputs, "float32"))
        self.on_accelerator = on_accelerator(self.backend)
        compiler = _COMPILERS[self.backend]

        def compiled(batch: int):
            dispatch, to_host = compiler(network, (batch, size, size, 3))
            to_host(dispatch(np.zeros((batch, size, size, 3), np.float32)))  # traces it; on a GPU, takes its memory
            return dispatch, to_host

        if batch_size is None and self.on_accelerator:
            self.batch_size, (self._dispatch, self._to_host) = choose_batch_size(compiled)
        else:
            self.batch_size = batch_size or CPU_BATCH_SIZE
            self._dispatch, self._to_host = compiler(network, (self.batch_size, size, size, 3))
        self._put = _DEVICE_PUT[self.backend] if self.on_accelerator else None
        self.feature_dim = int(self.model.output_shape[-1])

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """Vectors (n, feature_dim) float32 for ``n <= batch_size`` images (n, H, W, 3) in 0–255."""
        return self._vectors(len(images), self._dispatch(self._padded(images)))

    def stream(self, batches: Iterable[tuple[T, np.ndarray]]) -> Iterator[tuple[T, np.ndarray]]:
        """``(key, vectors)`` for each ``(key, images)``, in order. On a GPU the next batch is copied to
        the device while this one computes; each ``images`` may be reused once the next is asked for."""
        if self._put is None:
            for key, images in batches:
                yield key, self(images)
            return
        in_flight: tuple[T, int, object] | None = None
        for key, images in batches:
            on_device = self._put(self._padded(images))  # a copy: ``images`` may now be overwritten
            result = self._dispatch(on_device)  # asynchronous: computes while the next batch is copied
            if in_flight is not None:
                yield in_flight[0], self._vectors(*in_flight[1:])
            in_flight = (key, len(images), result)
        if in_flight is not None:
            yield in_flight[0], self._vectors(*in_flight[1:])

    def _vectors(self, count: int, result) -> np.ndarray:
        """The first ``count`` rows of a dispatched batch's result, on the host (waits for it)."""
        return np.asarray(self._to_host(result))[:count].astype(np.float32, copy=False)

    def _padded(self, images: np.ndarray) -> np.ndarray:
        count = len(images)
        if count > self.batch_size:
            raise ValueError(f"got {count} images for a batch of {self.batch_size}")
        if count < self.batch_size:
            padding = np.zeros((self.batch_size - count, *images.shape[1:]), np.float32)
            images = np.concatenate([images, padding])
        return np.asarray(images, np.float32)


def choose_batch_size(compiled: Callable[[int], T], largest: int = MAX_BATCH_SIZE) -> tuple[int, T]:
    """The largest batch size from ``largest`` down (halving) for which ``compiled(size)`` does not run
    out of device memory, and what it returned; any other error is raised as it is."""
    size = largest
    while True:
        try:
            return size, compiled(size)
        except Exception as exc:  # noqa: BLE001 - each backend has its own out-of-memory error
            if not is_out_of_memory(exc):
                raise
            if size == 1:
                raise FeatxError("The backbone does not fit in the device's memory even one image at a time; "
                                 "use a smaller {param} or another device.", param="image_size") from exc
            size //= 2


def is_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is a backend's out-of-device-memory error (TensorFlow, XLA/JAX, PyTorch)."""
    if type(exc).__name__ in ("ResourceExhaustedError", "OutOfMemoryError"):
        return True
    text = str(exc)
    return "RESOURCE_EXHAUSTED" in text or "out of memory" in text.lower()


def on_accelerator(backend: str) -> bool:
    """Whether Keras on ``backend`` computes on a GPU (or another accelerator) rather than the CPU."""
    import_keras(backend)  # the one door: the backend chosen, and imported quietly, first
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    import tensorflow as tf  # loaded by Keras above

    return bool(tf.config.list_logical_devices("GPU"))


# Each backend's compiled forward pass: (dispatch(images) -> result on the device, to_host(result)).
def _tensorflow_forward(model, shape):
    import tensorflow as tf  # already loaded: Keras runs on it

    compiled = tf.function(lambda images: model(images, training=False),
                           input_signature=[tf.TensorSpec(shape, tf.float32)], reduce_retracing=True)
    return compiled, lambda result: result.numpy()


def _jax_forward(model, shape):
    import jax

    state = ([v.value for v in model.trainable_variables], [v.value for v in model.non_trainable_variables])
    compiled = jax.jit(lambda trainable, frozen, images: model.stateless_call(
        trainable, frozen, images, training=False)[0])
    return (lambda images: compiled(*state, images)), np.asarray


def _torch_forward(model, shape):
    import torch
    from keras import ops

    model.eval()

    def forward(images):
        with torch.inference_mode():
            return model(ops.convert_to_tensor(images), training=False)

    return forward, ops.convert_to_numpy


_COMPILERS = {"tensorflow": _tensorflow_forward, "jax": _jax_forward, "torch": _torch_forward}


def _jax_put(images):
    import jax

    return jax.device_put(images).block_until_ready()  # copied: the host buffer may be reused


def _tensorflow_put(images):
    import tensorflow as tf

    with tf.device("GPU:0"):
        return tf.identity(tf.constant(images))


def _torch_put(images):
    import torch

    return torch.from_numpy(images).to("cuda", non_blocking=False)


_DEVICE_PUT = {"tensorflow": _tensorflow_put, "jax": _jax_put, "torch": _torch_put}


def build_backbone(config: EmbedConfig, backend: str | None = None):
    """The headless Keras model of ``config`` whose output is the pooled (batch, D) vector, on ``backend``."""
    keras = import_keras(backend)
    if config.is_hub:
        from featx.hubmodel import build_hub_backbone

        return build_hub_backbone(config)
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
    with _seeded(config.seed), _dtype_policy(keras, config.precision), warnings.catch_warnings(record=True) as caught:
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
    hub = uses_keras_hub(path)  # a fine-tuned transformer: keras-hub brings its classes
    if hub:
        import_keras_hub()
    try:
        with tensorflow_hidden() if hub else contextlib.nullcontext():
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:  # noqa: BLE001 - any loading failure is the file's fault here
        raise FeatxError(
            f"{{param}}: {config.model_path!r} could not be loaded as a Keras model: {_first_line(exc)}",
            param="backbone",
        ) from exc
    return _wrap_custom(keras, model, config)


def _wrap_custom(keras, model, config: EmbedConfig):
    """A loaded custom model as a frozen (batch, D) feature model at the configuration's size."""
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
def _dtype_policy(keras, precision: str) -> Iterator[None]:
    """Layers built inside compute in ``precision`` (Keras mixed precision: float32 variables),
    then Keras' global policy is restored."""
    if precision == "float32":
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(f"mixed_{precision}")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


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
