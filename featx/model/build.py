"""A fitted head as a Keras model, for fine-tuning and export.

How a head becomes layers is its registry entry's business (``HeadSpec.to_keras``, converters in
:mod:`featx.heads.layers`); :func:`head_network` asks the registry and wraps the layers in a model
that gives the same probabilities as the head. Only standard layers are used, so the models load
with Keras' safe mode.
"""

from __future__ import annotations

from featx.backbones.build import build_backbone
from featx.backbones.preprocessing import preprocess, preprocessing_layers
from featx.backend import import_keras
from featx.config import EmbedConfig
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
    keras = import_keras()
    inputs = keras.Input((head.feature_dim,), name="features")
    outputs = inputs
    for layer in layers:
        outputs = layer(outputs)
    return keras.Model(inputs, outputs, name="featx_head")


def build_classifier(head, config: EmbedConfig):
    """(classifier, backbone, feature model) for ``head``: (S, S, 3) raw 0–255 RGB input.

    The backbone is called with ``training=False``, so BatchNormalization stays in inference mode
    even where its layers are unfrozen; the head's own Dropout still trains.
    """
    keras = import_keras()
    backbone = build_backbone(config)
    size = config.input_size
    inputs = keras.Input((size, size, 3), name="image")
    features = backbone(preprocess(preprocessing_layers(config.preprocessing), inputs), training=False)
    probabilities = head_network(head)(features)
    classifier = keras.Model(inputs, probabilities, name="featx_classifier")
    feature_model = keras.Model(inputs, features, name="featx_backbone")
    return classifier, backbone, feature_model
