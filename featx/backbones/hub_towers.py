"""The image towers of CLIP and SigLIP Hugging Face snapshot folders, as keras-hub encoders.

keras-hub converts DINOv2, DINOv3 and ViT snapshots itself, but has no converter for CLIP and SigLIP
snapshots (its presets of these were converted offline). The weight mapping is written here, as
keras-hub's own converters write theirs: transformers' ``vision_model.…`` tensors, read from the
safetensors files, are assigned to a ``CLIPVisionEncoder`` or ``SigLIPVisionEncoder`` built with
the snapshot's sizes (read off the weights; heads, activation and epsilon from config.json). CLIP's
``visual_projection`` becomes a Dense layer on the class token after the final LayerNorm (which is
transformers' ``post_layernorm`` of the pooled token): ``get_image_features``. SigLIP's attention
pooling head is the encoder's own output: its ``get_image_features``. A full model (``clip``,
``siglip``) or a vision-only one (``clip_vision_model``, ``siglip_vision_model``) is read alike.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from featx.errors import FeatxError, MissingDependencyError, OptionError

VISION_MODEL_TYPES = {"clip": "clip", "clip_vision_model": "clip", "siglip": "siglip", "siglip_vision_model": "siglip"}
# transformers' hidden_act -> keras-hub's name, per family (what keras-hub's layers compute exactly)
_ACTIVATIONS = {"clip": {"quick_gelu": "quick_gelu", "gelu": "gelu"},
                "siglip": {"gelu_pytorch_tanh": "gelu_approximate", "gelu_new": "gelu_approximate", "gelu": "gelu"}}
_DEFAULTS = {"clip": {"hidden_act": "quick_gelu", "layer_norm_eps": 1e-5, "num_attention_heads": 12},
             "siglip": {"hidden_act": "gelu_pytorch_tanh", "layer_norm_eps": 1e-6, "num_attention_heads": 12}}
_EPSILON = {"clip": 1e-5, "siglip": 1e-6}  # what keras-hub's encoders fix (CLIP: every LayerNorm; SigLIP: the last)


def vision_config(config: dict) -> dict:
    """The vision part of a CLIP or SigLIP config.json (the whole of a vision-only model's)."""
    if config.get("model_type") in ("clip", "siglip"):
        return config.get("vision_config") or {}
    return config


def vision_weights(folder: Path) -> dict[str, np.ndarray]:
    """The image tower's float32 arrays of a snapshot, keyed without ``vision_model.``
    (``visual_projection.weight`` kept as it is)."""
    try:
        from safetensors import safe_open
    except ImportError:
        raise MissingDependencyError('{param}: reading a snapshot needs safetensors: pip install "featx[hub]"',
                                     param="backbone") from None
    weights: dict[str, np.ndarray] = {}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="numpy") as handle:
            for key in handle.keys():
                if key.startswith("vision_model.") or key == "visual_projection.weight":
                    weights[key.removeprefix("vision_model.")] = np.asarray(handle.get_tensor(key), np.float32)
    if "embeddings.patch_embedding.weight" not in weights:
        raise OptionError(f"{{param}}: {folder}'s weights hold no image tower (vision_model.embeddings…); give a "
                          "full CLIP or SigLIP snapshot, or a vision-only one.", param="backbone")
    return weights


def load_vision_tower(keras, keras_hub, folder: Path, family: str):
    """(encoder, projection): the keras-hub encoder of a snapshot's image tower with its weights, and
    CLIP's projection as a Dense layer (None for SigLIP, and for a CLIP snapshot without one)."""
    config = json.loads((folder / "config.json").read_text())
    vision = {**_DEFAULTS[family], **vision_config(config)}
    weights = vision_weights(folder)
    try:
        encoder = _encoder(keras_hub, family, vision, weights, folder)
        _assign(encoder, family, weights)
        projection = None
        if "visual_projection.weight" in weights:
            kernel = weights["visual_projection.weight"].T
            projection = keras.layers.Dense(kernel.shape[1], use_bias=False, name="visual_projection")
            projection.build((None, kernel.shape[0]))
            projection.kernel.assign(kernel)
    except OptionError:
        raise
    except (KeyError, ValueError) as exc:  # a tensor missing or of another shape than its config says
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise FeatxError(f"{{param}}: {folder}'s image tower does not match its config.json ({text}); download the "
                         "snapshot again.", param="backbone") from None
    return encoder, projection


def _encoder(keras_hub, family: str, vision: dict, weights: dict, folder: Path):
    """The encoder with the snapshot's sizes, read off its weights where they say them."""
    hidden, _, patch, _ = weights["embeddings.patch_embedding.weight"].shape
    layers = 0
    while f"encoder.layers.{layers}.layer_norm1.weight" in weights:
        layers += 1
    positions = weights["embeddings.position_embedding.weight"].shape[0] - (1 if family == "clip" else 0)
    grid = math.isqrt(positions)
    activation = _ACTIVATIONS[family].get(vision["hidden_act"])
    eps = float(vision["layer_norm_eps"])

    def refuse(what: str) -> OptionError:
        return OptionError(f"{{param}}: {folder} declares {what}; featx embeds CLIP and SigLIP snapshots through "
                           "keras-hub's encoders, which do not compute that.", param="backbone")

    if activation is None:
        raise refuse(f"hidden_act {vision['hidden_act']!r} (known: {', '.join(_ACTIVATIONS[family])})")
    if not math.isclose(eps, _EPSILON[family], rel_tol=1e-6):
        raise refuse(f"layer_norm_eps {eps:g} (keras-hub fixes {_EPSILON[family]:g})")
    if family == "siglip" and ("head.probe" not in weights or vision.get("vision_use_head") is False):
        raise refuse("no attention pooling head (vision_use_head false)")
    if grid * grid != positions:
        raise refuse(f"{positions} patch positions (a square grid is needed)")
    args = dict(patch_size=int(patch), hidden_dim=int(hidden), num_layers=layers,
                num_heads=int(vision["num_attention_heads"]),
                intermediate_dim=int(weights["encoder.layers.0.mlp.fc1.weight"].shape[0]),
                intermediate_activation=activation, image_shape=(grid * patch, grid * patch, 3))
    if family == "clip":
        return keras_hub.models.CLIPVisionEncoder(**args)
    return keras_hub.models.SigLIPVisionEncoder(**args, layer_norm_epsilon=eps)


def _assign(encoder, family: str, w: dict) -> None:
    """transformers' tensors into the encoder's variables (each shape checked by ``assign``)."""
    def put(variable, value) -> None:
        if tuple(variable.shape) != tuple(value.shape):
            raise ValueError(f"{variable.path}: {tuple(value.shape)} for {tuple(variable.shape)}")
        variable.assign(value.astype(variable.dtype) if "int" in str(variable.dtype) else value)

    def norm(layer, key: str) -> None:
        put(layer.gamma, w[key + ".weight"])
        put(layer.beta, w[key + ".bias"])

    def dense(layer, key: str) -> None:
        put(layer.kernel, w[key + ".weight"].T)
        put(layer.bias, w[key + ".bias"])

    embedding = encoder.embedding
    put(embedding.patch_embedding.kernel, w["embeddings.patch_embedding.weight"].transpose(2, 3, 1, 0))
    put(embedding.position_embedding.embeddings, w["embeddings.position_embedding.weight"])
    put(embedding.position_ids, np.arange(embedding.position_ids.shape[1])[None])
    if family == "clip":
        put(embedding.class_embedding, w["embeddings.class_embedding"])
        norm(encoder.pre_layer_norm, "pre_layrnorm")
        norm(encoder.layer_norm, "post_layernorm")
    else:
        put(embedding.patch_embedding.bias, w["embeddings.patch_embedding.bias"])
        norm(encoder.post_layer_norm, "post_layernorm")
        head = encoder.head
        put(head.probe, w["head.probe"])
        _attention(put, head.attention, *np.split(w["head.attention.in_proj_weight"], 3),
                   *np.split(w["head.attention.in_proj_bias"], 3),
                   w["head.attention.out_proj.weight"], w["head.attention.out_proj.bias"])
        norm(head.layer_norm, "head.layernorm")
        dense(head.mlp.fc1, "head.mlp.fc1")
        dense(head.mlp.fc2, "head.mlp.fc2")
    for i, block in enumerate(encoder.encoder_layers):
        p = f"encoder.layers.{i}."
        a = p + "self_attn."
        _attention(put, block.attention if family == "clip" else block.self_attn,
                   *(w[a + f"{name}_proj.weight"] for name in "qkv"), *(w[a + f"{name}_proj.bias"] for name in "qkv"),
                   w[a + "out_proj.weight"], w[a + "out_proj.bias"])
        if family == "clip":
            norm(block.layer_norm_1, p + "layer_norm1")
            norm(block.layer_norm_2, p + "layer_norm2")
            dense(block.dense_1, p + "mlp.fc1")
            dense(block.dense_2, p + "mlp.fc2")
        else:
            norm(block.layer_norm1, p + "layer_norm1")
            norm(block.layer_norm2, p + "layer_norm2")
            dense(block.mlp.fc1, p + "mlp.fc1")
            dense(block.mlp.fc2, p + "mlp.fc2")


def _attention(put, layer, q, k, v, q_bias, k_bias, v_bias, out, out_bias) -> None:
    """transformers' (out, in) projections into a ``keras.layers.MultiHeadAttention``'s per-head kernels."""
    heads, size = layer.num_heads, layer.key_dim
    width = q.shape[1]
    for dense, weight, bias in ((layer.query_dense, q, q_bias), (layer.key_dense, k, k_bias),
                                (layer.value_dense, v, v_bias)):
        put(dense.kernel, weight.T.reshape(width, heads, size))
        put(dense.bias, bias.reshape(heads, size))
    put(layer.output_dense.kernel, out.T.reshape(heads, size, out.shape[0]))
    put(layer.output_dense.bias, out_bias)
