"""What a transformer's model folder declares, read without Keras: format, family, sizes, and how
images are to be prepared (:class:`Snapshot`).

A Hugging Face snapshot declares its image pipeline in ``preprocessor_config.json``
(:mod:`featx.backbones.hub_pipeline` follows it as transformers' PIL processors do); a keras-hub
preset in its image converter (``image_converter.json``: size, crop or pad to the aspect ratio,
scale and offset). Declarations that would embed meaningless vectors are refused in one line.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path

from featx.backbones.hub_pipeline import processor_pipeline
from featx.backbones.hub_towers import VISION_MODEL_TYPES, vision_config
from featx.errors import OptionError

TRANSFORMERS_FAMILIES = {"dinov2": "dinov2", "dinov2_with_registers": "dinov2", "dinov3_vit": "dinov3", "vit": "vit",
                         **VISION_MODEL_TYPES}
"""The Hugging Face ``model_type`` values featx embeds, each to its family (keras-hub converts the first four;
CLIP and SigLIP are mapped by :mod:`featx.backbones.hub_towers`)."""
KERAS_HUB_FAMILIES = {
    "DINOV2Backbone": "dinov2", "DINOV3Backbone": "dinov3", "ViTBackbone": "vit",
    "SigLIPBackbone": "siglip", "SigLIPVisionEncoder": "siglip", "CLIPBackbone": "clip", "CLIPVisionEncoder": "clip",
}


@dataclass(frozen=True)
class Snapshot:
    """What a model folder declares: its format, family, sizes and normalisation (None: undeclared)."""

    folder: Path
    format: str  # "keras-hub" or "transformers"
    family: str  # a key of HUB_FAMILIES
    input_size: int
    patch_size: int
    mean: tuple[float, ...] | None
    std: tuple[float, ...] | None
    prefixed_keys: bool = True  # transformers ViT: weights keyed "vit.…" as keras-hub's converter expects
    # how images are brought to input_size, as declared: a transformers pipeline ("pil:..." of
    # featx.backbones.hub_pipeline) or a keras-hub converter's stretch, crop or pad (None: undeclared)
    resize: str | None = None

    @classmethod
    def read(cls, folder: Path) -> Snapshot:
        config = _json(folder / "config.json", required=True)
        if "registered_name" in config:
            return _checked(_read_keras_hub(folder, config))
        if "model_type" in config:
            return _checked(_read_transformers(folder, config))
        if "architecture" in config:
            raise OptionError(f"{{param}}: {folder} is a timm snapshot; featx reads keras-hub presets and Hugging Face "
                              "transformers snapshots (dinov2, dinov2_with_registers, dinov3_vit, vit, clip, siglip).",
                              param="backbone")
        raise OptionError(f"{{param}}: {folder}/config.json is neither a keras-hub preset nor a transformers config "
                          "(no 'registered_name' or 'model_type').", param="backbone")


def _checked(snapshot: Snapshot) -> Snapshot:
    """Refuse, in one line, what a snapshot declares that would embed meaningless vectors or fail deep
    inside keras-hub: a size or patch that is not a positive integer, a normalisation that is not three
    numbers, a zero standard deviation (a division by zero)."""
    def bad(what: str) -> OptionError:
        return OptionError(f"{{param}}: {snapshot.folder} declares {what}; fix its config or use another snapshot.",
                           param="backbone")

    for name, value in (("input size", snapshot.input_size), ("patch size", snapshot.patch_size)):
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 4096:
            raise bad(f"{name} {value!r} (a whole number of pixels above 0 is needed)")
    for name, values in (("image_mean", snapshot.mean), ("image_std", snapshot.std)):
        if values is None:
            continue
        if len(values) != 3 or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                       for v in values):
            raise bad(f"{name} {list(values)!r:.60} (three numbers, one per RGB channel, are needed)")
    if snapshot.std is not None and min(snapshot.std) <= 0:
        raise bad(f"image_std {list(snapshot.std)!r}: a standard deviation must be above 0")
    return snapshot


def _json(path: Path, required: bool = False) -> dict:
    if not path.is_file():
        if required:
            raise OptionError(
                f"{{param}}: {path.parent} is not a model folder (it has no config.json); pass a keras-hub preset "
                "folder or a Hugging Face snapshot folder.", param="backbone",
            )
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise OptionError(f"{{param}}: {path} cannot be read as JSON ({exc}).", param="backbone") from None
    return data if isinstance(data, dict) else {}


def _read_keras_hub(folder: Path, config: dict) -> Snapshot:
    class_name = str(config["registered_name"]).rpartition(">")[2]  # any value: an unknown one is refused below
    family = KERAS_HUB_FAMILIES.get(class_name)
    if family is None:
        raise OptionError(
            f"{{param}}: {folder} holds a keras-hub {class_name}; featx embeds with "
            f"{', '.join(sorted(KERAS_HUB_FAMILIES))}.", param="backbone",
        )
    arch = config.get("config", {})
    arch = arch.get("vision_encoder", {}).get("config", arch)  # SigLIPBackbone / CLIPBackbone: the image half
    converter = _json(folder / "image_converter.json").get("config") or (
        _json(folder / "preprocessor.json").get("config", {}).get("image_converter", {}).get("config", {}))
    size = (converter.get("image_size") or arch.get("image_shape") or [0])[0]
    patch = arch.get("patch_size", 1)
    mean, std = _from_scale_offset(converter.get("scale"), converter.get("offset")) if converter else (None, None)
    return Snapshot(folder, "keras-hub", family, int(size), int(patch[0] if isinstance(patch, list) else patch),
                    mean, std, resize=_converter_resize(converter) if converter else None)


def _converter_resize(converter: dict) -> str:
    """The featx resize mode of a keras-hub image converter (``keras.layers.Resizing``: it crops to the
    aspect ratio unless told otherwise). featx resizes bilinearly without antialiasing, as the converter
    does by default; a converter asking another interpolation keeps its crop or pad, resized bilinearly."""
    if converter.get("pad_to_aspect_ratio"):
        return "pad"
    return "crop" if converter.get("crop_to_aspect_ratio", True) else "stretch"


def _from_scale_offset(scale, offset) -> tuple[tuple[float, ...] | None, tuple[float, ...] | None]:
    """keras-hub's converters compute ``x * scale + offset`` on 0–255 pixels: as mean/std on 0–1 pixels."""
    if scale is None:
        return None, None
    scales = [float(s) for s in (scale if isinstance(scale, list) else [scale] * 3)]
    offsets = [float(o) for o in (offset if isinstance(offset, list) else [offset or 0.0] * 3)]
    std = tuple(1.0 / (255.0 * s) for s in scales)
    return tuple(-o * s for o, s in zip(offsets, std)), std


def _read_transformers(folder: Path, config: dict) -> Snapshot:
    model_type = config["model_type"]
    family = TRANSFORMERS_FAMILIES.get(model_type) if isinstance(model_type, str) else None
    if family is None:
        raise OptionError(
            f"{{param}}: {folder} holds a transformers '{model_type}' model; featx embeds transformers snapshots of "
            f"model type {', '.join(TRANSFORMERS_FAMILIES)}.", param="backbone",
        )
    processor = _json(folder / "preprocessor_config.json")
    keys = _weights_keys(folder)
    if model_type in VISION_MODEL_TYPES:  # sizes in vision_config (a full model), layers under vision_model.
        config = vision_config(config)
        keys = [key for key in keys if key.startswith("vision_model.")]
    _check_layer_count(folder, config, keys)
    prefixed = any(key.startswith("vit.") for key in keys) or not keys if model_type == "vit" else True
    if not processor:  # nothing declared: the family's normalisation, stretched to config.json's size
        return Snapshot(folder, "transformers", family, config.get("image_size", 0), config.get("patch_size", 1),
                        None, None, prefixed)
    pipeline, mean, std = processor_pipeline(processor, model_type)
    size = pipeline.fixed_size[0] if pipeline else _declared_size(processor) or config.get("image_size", 0)
    return Snapshot(folder, "transformers", family, size, config.get("patch_size", 1), mean, std, prefixed,
                    pipeline.spec if pipeline else None)


def _declared_size(processor: dict) -> int | None:
    """The size a transformers image processor feeds the model: its centre crop, else its resize."""
    for key in (("crop_size",) if processor.get("do_center_crop") else ()) + ("size",):
        value = processor.get(key)
        if isinstance(value, int):
            return value
        if isinstance(value, dict):
            if value.get("height") and value.get("width") and value["height"] != value["width"]:
                raise OptionError(f"{{param}}: the snapshot's {key} is {value['height']}x{value['width']}; featx "
                                  "embeds square inputs (give --image-size to choose one).", param="backbone")
            found = value.get("height") or value.get("shortest_edge")
            if found:
                return found
    return None


def _weights_keys(folder: Path) -> list[str]:
    """Every tensor name of the snapshot's safetensors files (read from their headers only)."""
    keys: list[str] = []
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with open(path, "rb") as handle:
                length = int.from_bytes(handle.read(8), "little")
                header = json.loads(handle.read(min(length, 100_000_000)))
        except (OSError, ValueError) as exc:
            raise OptionError(f"{{param}}: {path} is not a readable safetensors file ({exc}); download the snapshot "
                              "again.", param="backbone") from None
        if not isinstance(header, dict):
            raise OptionError(f"{{param}}: {path} is not a readable safetensors file (its header is not a table); "
                              "download the snapshot again.", param="backbone")
        keys += [key for key in header if key != "__metadata__"]
    return keys


_LAYER = re.compile(r"encoder\.layers?\.(\d+)\.")  # transformers' names: encoder.layer.N. / encoder.layers.N.


def _check_layer_count(folder: Path, config: dict, keys: list[str]) -> None:
    """Refuse a config.json whose num_hidden_layers its weights do not have: fewer would silently drop
    the top blocks (meaningless vectors), more fails deep inside keras-hub."""
    declared = config.get("num_hidden_layers")
    found = {int(m.group(1)) for key in keys if (m := _LAYER.search(key))}
    if not found or not isinstance(declared, int) or isinstance(declared, bool):
        return
    if declared != len(found):
        raise OptionError(f"{{param}}: {folder}/config.json declares num_hidden_layers {declared}, but its weights "
                          f"hold {len(found)} layers; fix config.json or download the snapshot again.",
                          param="backbone")
