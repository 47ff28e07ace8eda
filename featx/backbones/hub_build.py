"""A keras-hub transformer as a featx backbone: image in, one pooled vector out.

The model is the keras-hub backbone (loaded from the snapshot folder that :mod:`featx.backbones.hub`
resolved and hashed, or built with random weights from the registry) followed by the pooling, all
standard Keras layers: ``cls`` crops the class token, ``avg`` averages the patch tokens (class and
register tokens cropped away), ``cls+avg`` concatenates both, ``pooled`` is the model's own image
embedding. Tokens are taken after the final LayerNorm; leaving it out changes the features by a
factor of several. Two places where keras-hub's conversion of a transformers snapshot differs
from transformers itself are fixed here: DINOv2's position embeddings are resized with PyTorch's
bicubic kernel (keras-hub's differs by up to 1%), and a backbone-only ViT snapshot (weights not
under ``vit.``) is re-keyed in a temporary folder, since keras-hub's converter expects a classifier's.
CLIP and SigLIP snapshots, which keras-hub does not convert, come from :mod:`featx.backbones.hub_towers`.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np

from featx.backbones.hub import Snapshot, verified_folder
from featx.backbones.hub_table import HUB_FAMILIES, get_hub_backbone
from featx.backbones.hub_towers import load_vision_tower
from featx.backend import import_keras, import_keras_hub, tensorflow_hidden
from featx.config import EmbedConfig, short_name
from featx.errors import FeatxError, OptionError


def build_hub_backbone(config: EmbedConfig):
    """The frozen Keras model of a ``hub:`` configuration: (batch, size, size, 3) normalised → (batch, D)."""
    keras = import_keras()
    keras_hub = import_keras_hub()
    with tensorflow_hidden():  # keras-hub imports TensorFlow to load a preset, when it is installed
        return _build(keras, keras_hub, config)


def _build(keras, keras_hub, config: EmbedConfig):
    size = config.input_size
    if config.model_path is None:  # random weights (--weights none) of a curated entry
        from featx.backend import seeded

        spec = get_hub_backbone(config.backbone.removeprefix("hub:"))
        family = spec.family
        with seeded(config.seed):
            backbone = getattr(keras_hub.models, HUB_FAMILIES[family].backbone_class)(
                **dict(spec.arch), image_shape=(size, size, 3))
            projection = keras.layers.Dense(spec.pooled_width, use_bias=False, name="featx_projection") \
                if family == "clip" else None
    else:
        snapshot = Snapshot.read(verified_folder(config))
        family, projection = snapshot.family, None
        if snapshot.format == "transformers" and family in ("clip", "siglip"):  # no keras-hub converter: ours
            backbone, projection = load_vision_tower(keras, keras_hub, snapshot.folder, family)
        else:
            backbone = _load(keras_hub, snapshot, size)
    model = _pooled_model(keras, backbone, family, config.pooling, projection, short_name(config.backbone[4:]))
    model.trainable = False
    return model


def _load(keras_hub, snapshot: Snapshot, size: int):
    """The keras-hub backbone of a snapshot folder at ``size`` pixels (position embeddings resized for DINOv2)."""
    kwargs = {"image_shape": (size, size, 3)} if HUB_FAMILIES[snapshot.family].interpolates else {}
    folder = snapshot.folder
    try:
        if snapshot.format == "transformers" and snapshot.family == "vit":
            eps = json.loads((folder / "config.json").read_text()).get("layer_norm_eps")
            if eps:
                kwargs["layer_norm_epsilon"] = eps
            if not snapshot.prefixed_keys:
                with tempfile.TemporaryDirectory(prefix="featx-vit-") as work:
                    return keras_hub.models.Backbone.from_preset(_vit_prefixed(folder, Path(work)), **kwargs)
        backbone = keras_hub.models.Backbone.from_preset(str(folder), **kwargs)
    except Exception as exc:  # keras-hub's loaders raise many kinds (safetensors, shapes, configs): one line each
        text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise FeatxError(f"{{param}}: keras-hub could not load {folder}: {text}", param="backbone") from exc
    if snapshot.family == "dinov2" and not backbone.antialias_in_interpolation:
        return _resize_position_embeddings_like_torch(backbone)
    return backbone


def _vit_prefixed(folder: Path, work: Path) -> str:
    """A copy of a backbone-only transformers ViT snapshot with its weights under ``vit.`` (keras-hub's keys)."""
    from safetensors.numpy import load_file, save_file

    tensors = {}
    for path in sorted(folder.glob("*.safetensors")):
        tensors.update({f"vit.{key}": value for key, value in load_file(str(path)).items()})
    shutil.copy(folder / "config.json", work / "config.json")
    save_file(tensors, str(work / "model.safetensors"))
    return str(work)


def _resize_position_embeddings_like_torch(backbone):
    """DINOv2 with its patch position embeddings resized to the input's patch grid as transformers
    resizes them (``torch.nn.functional.interpolate``, bicubic with a = -0.75, half-pixel centres,
    no antialiasing), rebuilt with that grid as its own: keras-hub then resizes nothing, and a saved
    model reloads with the same table (keras-hub re-derives a resized table on load, with its kernel)."""
    embeddings = backbone.embeddings
    table = np.asarray(embeddings.position_embeddings.numpy())
    source_grid = math.isqrt(table.shape[1] - 1)
    target_grid = math.isqrt(embeddings.interpolated_position_embeddings.shape[1] - 1)
    if source_grid == target_grid:
        return backbone
    patches = table[0, 1:].reshape(source_grid, source_grid, -1).astype(np.float64)
    weights = _bicubic_matrix(source_grid, target_grid)
    resized = np.einsum("ih,hwd,jw->ijd", weights, patches, weights).reshape(1, -1, table.shape[-1])
    resized = np.concatenate([table[:, :1], resized], axis=1).astype(np.float32)
    config = backbone.get_config()
    config["position_embedding_shape"] = tuple(config["image_shape"][:2])
    rebuilt = type(backbone).from_config(config)
    for source, target in zip(backbone.weights, rebuilt.weights):
        if target.path.endswith("position_embeddings"):  # the table and its resized copy: now the same
            target.assign(resized)
        else:
            target.assign(source)
    return rebuilt


def _bicubic_matrix(size_in: int, size_out: int, a: float = -0.75) -> np.ndarray:
    """(size_out, size_in) weights of PyTorch's bicubic resize (align_corners=False), edges clamped."""
    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    matrix = np.zeros((size_out, size_in))
    for i in range(size_out):
        source = (i + 0.5) * size_in / size_out - 0.5
        left = math.floor(source)
        t = source - left
        for offset, weight in zip(range(-1, 3), (far(t + 1), near(t), near(1 - t), far(2 - t))):
            matrix[i, min(max(left + offset, 0), size_in - 1)] += weight
    return matrix


def _pooled_model(keras, backbone, family: str, pooling: str, projection, name: str):
    """``backbone`` followed by ``pooling`` of its tokens after the final LayerNorm, as one Keras model."""
    encoder = getattr(backbone, "vision_encoder", backbone)  # SigLIPBackbone / CLIPBackbone: the image half
    inputs = keras.Input(_image_shape(encoder), name="images")
    feed = {next(iter(encoder.input)): inputs} if isinstance(encoder.input, dict) else inputs
    if family == "siglip":  # no class token; its own pooling is attention over the tokens
        tokens_model = keras.Model(encoder.inputs, [encoder.post_layer_norm.output, encoder.output])
        tokens, pooled = tokens_model(feed)
    else:
        tokens, pooled = encoder(feed), None
        if family == "clip":
            if projection is None and hasattr(backbone, "vision_projection"):
                pooled = backbone.vision_projection(backbone.vision_pooler(tokens))
            elif projection is not None:
                pooled = projection(_class_token(keras, tokens))
    if pooling == "pooled":
        if pooled is None:
            raise OptionError(f"{{param}} pooled: this {family} snapshot has no image projection (a bare vision "
                              "encoder); use cls, avg or cls+avg.", param="pooling")
        vector = pooled
    else:
        prefix = _prefix_tokens(family, encoder)
        parts = {"cls": lambda: _class_token(keras, tokens),
                 "avg": lambda: keras.layers.GlobalAveragePooling1D(name="featx_patch_mean")(
                     keras.layers.Cropping1D((prefix, 0), name="featx_patch_tokens")(tokens))}
        if pooling == "cls+avg":
            vector = keras.layers.Concatenate(name="featx_cls_avg")([parts["cls"](), parts["avg"]()])
        else:
            vector = parts[pooling]()
    return keras.Model(inputs, vector, name=f"featx_{name}")


def _class_token(keras, tokens):
    cropped = keras.layers.Cropping1D((0, tokens.shape[1] - 1), name="featx_class_token")(tokens)
    return keras.layers.Flatten(name="featx_class_vector")(cropped)


def _prefix_tokens(family: str, encoder) -> int:
    """How many tokens come before the patch tokens: class token and registers."""
    kind = HUB_FAMILIES[family].prefix_tokens
    if kind == "none":
        return 0
    return 1 + (int(getattr(encoder, "num_register_tokens", 0)) if kind == "cls+registers" else 0)


def _image_shape(encoder) -> tuple:
    shape = encoder.input_shape
    shape = next(iter(shape.values())) if isinstance(shape, dict) else shape
    return tuple(shape[1:])


