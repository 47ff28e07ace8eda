"""How raw 0–255 RGB pixels become a backbone's input, as Keras layers: one home for both paths.

The extractor runs these layers inside its compiled function when it embeds; fine-tune and export
put the same layers inside the saved model, so a deployed model feeds its backbone exactly as the
cache was fed. Each ``preprocess_input`` mode of ``keras.applications`` is rebuilt from standard
layers (the tests compare each with Keras' own function), so saved models load in safe mode.
The resize layer is the Keras twin of :func:`featx.data.images.resize_image`, which embedding uses on
decoded images without TensorFlow (a test keeps the two equal).
"""

from __future__ import annotations

import numpy as np

from featx.backbones.applications import PREPROCESSING_MODES
from featx.backbones.hub_pipeline import is_pipeline
from featx.backend import import_keras
from featx.errors import OptionError

TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)
CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)


def normalization_mode(mean, std) -> str:
    """The mode of "scale to [0, 1], then (x - mean) / std": tf or torch when it is theirs, else
    ``meanstd:<mean>:<std>`` (three numbers each, as a transformer snapshot declares them)."""
    mean, std = tuple(round(float(m), 8) for m in mean), tuple(round(float(s), 8) for s in std)
    if mean == (0.5,) * 3 and std == (0.5,) * 3:
        return "tf"  # x / 127.5 - 1
    if mean == TORCH_MEAN and std == TORCH_STD:
        return "torch"
    return "meanstd:" + ",".join(f"{m:.8g}" for m in mean) + ":" + ",".join(f"{s:.8g}" for s in std)


def preprocessing_layers(mode: str) -> list:
    """Layers equal to ``keras.applications`` preprocess_input of ``mode`` on raw 0–255 RGB
    (or, for ``meanstd:...`` modes, to a transformer's declared normalisation)."""
    keras = import_keras()
    if mode == "none":
        return []
    if mode.startswith("meanstd:"):
        mean, std = ([float(v) for v in part.split(",")] for part in mode.split(":")[1:3])
        return [
            keras.layers.Rescaling(1 / 255.0, name="featx_preprocess_meanstd_scale"),
            keras.layers.Normalization(mean=mean, variance=np.square(std), name="featx_preprocess_meanstd_normalize"),
        ]
    if mode == "tf":
        return [keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="featx_preprocess_tf")]
    if mode == "torch":
        return [
            keras.layers.Rescaling(1 / 255.0, name="featx_preprocess_torch_scale"),
            keras.layers.Normalization(mean=list(TORCH_MEAN), variance=np.square(TORCH_STD),
                                       name="featx_preprocess_torch_normalize"),
        ]
    if mode == "caffe":  # RGB → BGR, then the ImageNet BGR mean subtracted: one fixed 1×1 convolution
        layer = keras.layers.Conv2D(3, 1, name="featx_preprocess_caffe", trainable=False)
        layer.build((None, None, None, 3))
        swap = np.zeros((1, 1, 3, 3), np.float32)
        swap[0, 0, [2, 1, 0], [0, 1, 2]] = 1.0
        layer.set_weights([swap, -np.asarray(CAFFE_BGR_MEAN, np.float32)])
        return [layer]
    raise OptionError(f"{{param}} must be one of {', '.join(PREPROCESSING_MODES)}; got {mode!r}.", param="preprocess")


def preprocess(layers: list, images):
    """``images`` through ``layers`` in order (the identity for an empty list)."""
    for layer in layers:
        images = layer(images)
    return images


def resize_layer(size: int | tuple[int, int], mode: str):
    """A Keras layer resizing any image to ``size`` (square, or (height, width)) as featx does:
    bilinear, with ``mode`` stretch, crop (centre, to the aspect ratio) or pad (zero borders); or a
    snapshot's pipeline (``pil:...``, :class:`featx.backbones.pillow_resize.PillowResize`)."""
    keras = import_keras()
    if is_pipeline(mode):
        from featx.backbones.pillow_resize import PillowResize

        layer = PillowResize(mode)
        if layer.pipeline.fixed_size != ((size, size) if isinstance(size, int) else tuple(size)):
            raise OptionError(f"{{param}} {mode} gives {layer.pipeline.fixed_size}, not {size}.", param="resize")
        return layer
    height, width = (size, size) if isinstance(size, int) else size
    return keras.layers.Resizing(
        height, width, interpolation="bilinear", crop_to_aspect_ratio=mode == "crop",
        pad_to_aspect_ratio=mode == "pad", name="featx_resize",
    )
