"""Unfreezing the top of a backbone for fine-tuning: Keras applications by layers, transformers by blocks."""

from __future__ import annotations

from featx.backend import import_keras
from featx.errors import OptionError

_BLOCKS = ("DINOV2Layer", "DINOV3Layer", "ViTEncoderBlock", "SigLIPEncoderLayer", "CLIPEncoderLayer")


def _leaves(model) -> list:
    """The layers of ``model`` input to output, nested models and ViT's encoder opened up."""

    found = []
    for layer in leaf_layers(model):
        if hasattr(layer, "encoder_layers") and hasattr(layer, "layer_norm"):  # ViTEncoder: blocks + final norm
            found.extend([*layer.encoder_layers, layer.layer_norm])
        else:
            found.append(layer)
    return found


def transformer_blocks(model) -> list:
    """The transformer blocks of a hub backbone model, input to output."""
    return [layer for layer in _leaves(model) if type(layer).__name__ in _BLOCKS]


def unfreeze_top_blocks(model, count: int) -> int:
    """Make the top ``count`` transformer blocks trainable, and with them everything above the last
    block (the final LayerNorm, SigLIP's attention pooling, CLIP's projection); the rest stays frozen."""
    leaves = _leaves(model)
    blocks = [i for i, layer in enumerate(leaves) if type(layer).__name__ in _BLOCKS]
    count = min(count, len(blocks))
    chosen = [leaves[i] for i in blocks[len(blocks) - count:]] + (leaves[blocks[-1] + 1:] if count else [])
    trainable = {id(v) for layer in chosen for v in layer.weights}
    model.trainable = True
    for variable in model.weights:
        variable.trainable = id(variable) in trainable
    return count


def leaf_layers(model) -> list:
    """The layers of ``model`` with nested models flattened, input to output."""
    layers = []
    for layer in model.layers:
        layers.extend(leaf_layers(layer) if hasattr(layer, "layers") and layer.layers else [layer])
    return layers


def parse_unfreeze(value: str | int | float, total: int) -> int:
    """``N`` layers, a ``FRACTION`` (0–1) of them, or ``all``, counted from the top."""
    text = str(value).strip().lower()
    try:
        if text == "all":
            return total
        if "." in text:
            fraction = float(text)
            if not 0.0 < fraction <= 1.0:
                raise ValueError
            return max(1, round(fraction * total))
        count = int(text)
        if count < 0:
            raise ValueError
        return min(count, total)
    except ValueError:
        raise OptionError(f"{{param}} must be a number of layers, a fraction in (0, 1] or 'all'; got {value!r}.",
                          param="unfreeze") from None


def unfreeze_backbone(backbone, value: str | int | float, *, transformer: bool) -> int:
    """Unfreeze the top of ``backbone`` as ``value`` says (:func:`parse_unfreeze`), counted in blocks
    for a transformer (:func:`unfreeze_top_blocks`) and in layers otherwise (:func:`unfreeze_top`);
    returns how many were unfrozen."""
    if transformer:
        return unfreeze_top_blocks(backbone, parse_unfreeze(value, len(transformer_blocks(backbone))))
    return unfreeze_top(backbone, parse_unfreeze(value, len(_layers(backbone))))


def unfreeze_top(backbone, count: int) -> int:
    """Make the top ``count`` layers trainable, BatchNormalization excepted; returns how many."""
    keras = import_keras()
    layers = _layers(backbone)
    backbone.trainable = True
    cut = len(layers) - count
    for index, layer in enumerate(layers):
        layer.trainable = index >= cut and not isinstance(layer, keras.layers.BatchNormalization)
    return count


def _layers(backbone) -> list:
    """The layers an unfreeze counts: every leaf layer but the inputs."""
    keras = import_keras()
    return [layer for layer in leaf_layers(backbone) if not isinstance(layer, keras.layers.InputLayer)]
