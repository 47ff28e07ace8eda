"""Fitted heads and preprocessing as plain Keras layers, for fine-tuning and export.

How a head becomes layers is its registry entry's business (``HeadSpec.to_keras``, converters in
:mod:`featx.heads.layers`); :func:`head_network` asks the registry and wraps the layers in a model
that gives the same probabilities as the head. Only standard layers are used, so the models load
with Keras' safe mode.
"""

from __future__ import annotations

import numpy as np

from featx._tf import import_keras
from featx.errors import FeatxError
from featx.heads.registry import convertible_heads, get_head_spec


def head_network(head):
    """A Keras model mapping (None, feature_dim) vectors to (None, len(head.classes)) probabilities."""
    convert = get_head_spec(head.kind).to_keras
    if convert is None:
        raise FeatxError(
            f"head {head.name} is a {head.kind} head, which has no equivalent Keras layer; fine-tune and "
            f"export need a {' or '.join(convertible_heads())} head: featx fit-head --head keras"
        )
    layers = convert(head)
    _, keras = import_keras()
    inputs = keras.Input((head.feature_dim,), name="features")
    outputs = inputs
    for layer in layers:
        outputs = layer(outputs)
    return keras.Model(inputs, outputs, name="featx_head")


def preprocessing_layers(mode: str) -> list:
    """Layers equal to ``keras.applications`` preprocess_input of ``mode`` on raw 0–255 RGB."""
    _, keras = import_keras()
    if mode == "none":
        return []
    if mode == "tf":
        return [keras.layers.Rescaling(1 / 127.5, offset=-1.0, name="featx_preprocess_tf")]
    if mode == "torch":
        return [
            keras.layers.Rescaling(1 / 255.0, name="featx_preprocess_torch_scale"),
            keras.layers.Normalization(mean=[0.485, 0.456, 0.406], variance=np.square([0.229, 0.224, 0.225]),
                                       name="featx_preprocess_torch_normalize"),
        ]
    if mode == "caffe":  # RGB → BGR, then the ImageNet BGR mean subtracted: one fixed 1×1 convolution
        layer = keras.layers.Conv2D(3, 1, name="featx_preprocess_caffe", trainable=False)
        layer.build((None, None, None, 3))
        swap = np.zeros((1, 1, 3, 3), np.float32)
        swap[0, 0, [2, 1, 0], [0, 1, 2]] = 1.0
        layer.set_weights([swap, -np.asarray([103.939, 116.779, 123.68], np.float32)])
        return [layer]
    raise FeatxError(f"unknown preprocessing mode {mode!r}")
