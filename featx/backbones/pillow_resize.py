"""A snapshot's image pipeline as a Keras layer, for exported models: Pillow's resize, in Keras ops.

An exported model takes raw images of any size; a transformer snapshot's pipeline resizes them with
Pillow (:mod:`featx.backbones.hub_pipeline`). :class:`PillowResize` computes what Pillow computes for
8-bit images: per axis, the filter's weights normalised and rounded to Pillow's 22-bit fixed point,
the horizontal pass first, each pass rounded and clipped to 0-255; then the centre crop, padded
with zeros where the image is smaller. Only the crop's rows and columns are computed. Its pixels
equal Pillow's within one step: float32 sums falling on a half move a few values in 10,000, and a
Pillow build that runs the vertical pass first for some sizes (the 13.0.0 wheel does) differs by
one step in more of them (README, Transformer backbones).

Importing this module registers the layer (``featx>PillowResize``): a model file holding it loads
after ``import featx.backbones.pillow_resize``.
"""

from __future__ import annotations

import math

from featx.backbones.hub_pipeline import ImagePipeline
from featx.backend import import_keras

keras = import_keras()
ops = keras.ops
_FILTERS = ("bilinear", "bicubic", "hamming", "lanczos")  # box and nearest hinge on float64 ties: not here
_FIXED = float(1 << 22)  # Pillow's PRECISION_BITS for 8-bit images


def _kernel(name: str, x):
    """Pillow's filter ``name`` at ``x`` (Resample.c: bicubic with a = -0.5)."""
    ax = ops.abs(x)
    if name == "bilinear":
        return ops.maximum(1.0 - ax, 0.0)
    if name == "bicubic":
        a = -0.5
        near = ((a + 2.0) * ax - (a + 3.0)) * ax * ax + 1.0
        far = (((ax - 5.0) * ax + 8.0) * ax - 4.0) * a
        return ops.where(ax < 1.0, near, ops.where(ax < 2.0, far, 0.0))
    if name == "hamming":
        safe = ops.where(ax == 0.0, 1.0, ax)
        value = ops.sin(math.pi * safe) / (math.pi * safe) * (0.54 + 0.46 * ops.cos(math.pi * ax))
        return ops.where(ax == 0.0, 1.0, ops.where(ax < 1.0, value, 0.0))
    safe = ops.where(ax == 0.0, 1.0, ax)  # lanczos, support 3
    value = 3.0 * ops.sin(math.pi * safe) * ops.sin(math.pi * safe / 3.0) / (math.pi * math.pi * safe * safe)
    return ops.where(ax == 0.0, 1.0, ops.where(ax < 3.0, value, 0.0))


@keras.saving.register_keras_serializable(package="featx")
class PillowResize(keras.layers.Layer):
    """Images (batch, height, width, 3) of any size, 0-255, resized and centre-cropped as Pillow and
    transformers do (``spec``: a ``pil:...`` pipeline of fixed output size), float32 0-255 out."""

    def __init__(self, spec: str, **kwargs):
        kwargs.setdefault("name", "featx_resize")
        super().__init__(**kwargs)
        self.spec = spec
        self.pipeline = ImagePipeline.from_spec(spec)
        if self.pipeline.fixed_size is None or self.pipeline.filter not in _FILTERS:
            raise ValueError(f"PillowResize cannot compute {spec!r}: it needs a fixed output size and one of "
                             f"Pillow's {', '.join(_FILTERS)} filters.")

    def _out_size(self, height, width):
        pipeline = self.pipeline
        if isinstance(height, int) and isinstance(width, int):  # static shapes (JAX, eager): transformers' own sums
            return pipeline.output_size(height, width)
        if pipeline.short:  # transformers: the long edge int(short * long / short_edge), exact in integers
            wide = width > height
            new_h = ops.where(wide, pipeline.short, (pipeline.short * height) // width)
            new_w = ops.where(wide, (pipeline.short * width) // height, pipeline.short)
            return new_h, new_w
        if pipeline.height:
            return ops.convert_to_tensor(pipeline.height, "int32"), ops.convert_to_tensor(pipeline.width, "int32")
        return height, width

    def _weights(self, size_in, size_out, length: int):
        """(length, size_in) weights of the output indices in the centre ``length`` of ``size_out``
        (zero rows outside the resized image: the crop's padding)."""
        top = (size_out - length) // 2
        index = ops.cast(ops.arange(length) + ops.cast(top, "int32"), "float32")
        n, m = ops.cast(size_in, "float32"), ops.cast(size_out, "float32")
        scale = n / m
        filterscale = ops.maximum(scale, 1.0)
        centre = (index + 0.5) * scale
        source = ops.cast(ops.arange(size_in), "float32")
        weights = _kernel(self.pipeline.filter, (source[None, :] - centre[:, None] + 0.5) / filterscale)
        weights = weights / ops.sum(weights, axis=1, keepdims=True)
        weights = ops.sign(weights) * ops.floor(ops.abs(weights) * _FIXED + 0.5) / _FIXED
        inside = (index >= 0.0) & (index < m)
        return ops.where(inside[:, None], weights, 0.0)

    def call(self, images):
        images = ops.cast(images, "float32")
        height, width = ops.shape(images)[1:3]
        if not (isinstance(height, int) and isinstance(width, int)):  # a graph of any size (TensorFlow)
            height, width = ops.cast(height, "int32"), ops.cast(width, "int32")
        new_h, new_w = self._out_size(height, width)
        out_h, out_w = self.pipeline.fixed_size
        across = ops.einsum("bhwc,xw->bhxc", images, self._weights(width, new_w, out_w))
        across = ops.clip(ops.floor(across + 0.5), 0.0, 255.0)  # Pillow rounds each pass to 8 bits
        down = ops.einsum("bhxc,yh->byxc", across, self._weights(height, new_h, out_h))
        return ops.clip(ops.floor(down + 0.5), 0.0, 255.0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.pipeline.fixed_size, input_shape[3])

    def get_config(self) -> dict:
        return {**super().get_config(), "spec": self.spec}
