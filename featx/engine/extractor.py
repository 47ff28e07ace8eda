"""A frozen backbone as one compiled function: raw 0–255 RGB batch in, pooled vectors out.

The family's ``preprocess_input`` (as the layers of :mod:`featx.backbones.preprocessing`) runs inside the
compiled function, so no caller can forget it or apply it twice. Batches always have the same
shape (the last one is padded), so the function is traced once; ``model.predict`` in a loop would
pay its per-call overhead on every batch. Each Keras backend compiles in its own way (below).

On a GPU the batch size, when not given, is the largest that fits (from :data:`LARGEST_AUTO_BATCH`
down, halving on out-of-memory), and :meth:`FeatureExtractor.stream` copies the next batch to the
device while the current one computes. The backbone runs at the configuration's ``precision``
(a Keras dtype policy, only while it is built); its vectors are always returned as float32.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

import numpy as np

from featx.backbones.build import build_backbone
from featx.backbones.preprocessing import preprocess, preprocessing_layers
from featx.backend import import_keras, resolve_backend
from featx.checks import check_positive
from featx.config import EmbedConfig
from featx.errors import FeatxError

T = TypeVar("T")
CPU_BATCH_SIZE = 32  # on a CPU a larger batch is not faster, only uses more memory
# The largest batch chosen on a GPU: past this the backbone is no faster per image, the buffers only larger.
LARGEST_AUTO_BATCH = 512


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


def choose_batch_size(compiled: Callable[[int], T], largest: int = LARGEST_AUTO_BATCH) -> tuple[int, T]:
    """The largest batch size from ``largest`` down (halving) for which ``compiled(size)`` does not run
    out of device memory, and what it returned; any other error is raised as it is."""
    size = largest
    while True:
        try:
            return size, compiled(size)
        except Exception as exc:
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


