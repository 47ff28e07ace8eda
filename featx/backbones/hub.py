"""Transformer backbones through keras-hub: which name means which snapshot, and what it declares.

``--backbone`` takes a curated keras-hub preset name (``dinov2_small``, see
``featx.backbones.hub_table.HUB_BACKBONES``), a ``hf://org/model`` or ``kaggle://...`` handle, or a local
folder: a keras-hub preset (``save_to_preset``) or a Hugging Face snapshot (``config.json`` with a
``model_type``). Each resolves to a local folder whose weights and configs are hashed into the
configuration, so a changed snapshot is a new cache; its declared normalisation
(``preprocessor_config.json`` or the keras-hub image converter) and input size are read here,
without Keras. :mod:`featx.backbones.hub_build` builds the model from the same folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

from featx.backbones.hub_table import HUB_BACKBONES, HUB_FAMILIES, HubBackboneSpec, get_hub_backbone, list_hub_backbones
from featx.config import EmbedConfig, sha256_once
from featx.errors import CacheError, MissingDependencyError, OptionError, WeightsUnavailableError

HANDLE_SCHEMES = ("hf://", "kaggle://")
TRANSFORMERS_FAMILIES = {"dinov2": "dinov2", "dinov2_with_registers": "dinov2", "dinov3_vit": "dinov3", "vit": "vit"}
"""The Hugging Face ``model_type`` values featx embeds, each to its family (keras-hub converts them)."""
KERAS_HUB_FAMILIES = {
    "DINOV2Backbone": "dinov2", "DINOV3Backbone": "dinov3", "ViTBackbone": "vit",
    "SigLIPBackbone": "siglip", "SigLIPVisionEncoder": "siglip", "CLIPBackbone": "clip", "CLIPVisionEncoder": "clip",
}
_HASHED_SUFFIXES = (".json", ".safetensors", ".h5", ".bin")  # weights and configs; not READMEs or licences


def is_hub_backbone(backbone: str) -> bool:
    """Whether ``backbone`` names a keras-hub model: a curated preset, a handle or a folder."""
    text = str(backbone)
    return (text.startswith(HANDLE_SCHEMES) or get_hub_backbone(text) is not None
            or Path(text).expanduser().is_dir())


def require_keras_hub() -> None:
    """A one-line error naming the extra unless keras-hub is installed (checked without importing it)."""
    if importlib.util.find_spec("keras_hub") is None:
        raise MissingDependencyError(
            '{param}: transformer backbones need keras-hub, which is not installed: pip install "featx[hub]".',
            param="backbone",
        )


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

    @classmethod
    def read(cls, folder: Path) -> Snapshot:
        config = _json(folder / "config.json", required=True)
        if "registered_name" in config:
            return _checked(_read_keras_hub(folder, config))
        if "model_type" in config:
            return _checked(_read_transformers(folder, config))
        if "architecture" in config:
            raise OptionError(f"{{param}}: {folder} is a timm snapshot; featx reads keras-hub presets and Hugging Face "
                              "transformers snapshots (dinov2, dinov2_with_registers, dinov3_vit, vit).",
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
                    mean, std)


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
            f"model type {', '.join(TRANSFORMERS_FAMILIES)}; for SigLIP or CLIP use a keras-hub preset "
            "(e.g. siglip_base_patch16_224).", param="backbone",
        )
    processor = _json(folder / "preprocessor_config.json")
    size = _declared_size(processor) or config.get("image_size", 0)
    mean = _values(processor["image_mean"]) if processor.get("do_normalize", True) and "image_mean" in processor else None
    std = _values(processor["image_std"]) if mean is not None and "image_std" in processor else None
    prefixed = True
    if model_type == "vit":
        prefixed = _weights_keys_start(folder, "vit.")
    return Snapshot(folder, "transformers", family, size, config.get("patch_size", 1), mean, std, prefixed)


def _values(value) -> tuple:
    """A processor's per-channel list as a tuple (anything else as one value: :func:`_checked` says why)."""
    return tuple(value) if isinstance(value, (list, tuple)) else (value,)


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


def _weights_keys_start(folder: Path, prefix: str) -> bool:
    """Whether the snapshot's safetensors keys start with ``prefix`` (read from the headers only)."""
    for path in sorted(folder.glob("*.safetensors")):
        try:
            with open(path, "rb") as handle:
                length = int.from_bytes(handle.read(8), "little")
                header = json.loads(handle.read(min(length, 100_000_000)))
        except (OSError, ValueError) as exc:
            raise OptionError(f"{{param}}: {path} is not a readable safetensors file ({exc}); download the snapshot "
                              "again.", param="backbone") from None
        return any(key.startswith(prefix) for key in header if key != "__metadata__")
    return True


def tree_sha256(folder: Path) -> str:
    """One sha256 over the weights and configs of ``folder`` (names and contents), recursively."""
    digest = hashlib.sha256()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in _HASHED_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    if not files:
        raise OptionError(f"{{param}}: {folder} holds no weights or configs (.json, .safetensors, .h5).",
                          param="backbone")
    for path in files:
        digest.update(f"{path.relative_to(folder).as_posix()}\0{sha256_once(path)}\n".encode())
    return digest.hexdigest()


def verified_folder(config: EmbedConfig) -> Path:
    """The snapshot folder of ``config``, if it still holds the weights and configs it was hashed with."""
    folder = Path(config.model_path or "")
    if not folder.is_dir():
        raise CacheError(f"{folder} is gone, and the backbone configuration {config.backbone} was made with it; put "
                         "it back, or re-embed the images and refit the head.")
    expected = config.weights.rpartition("sha256:")[2]
    if tree_sha256(folder) != expected:
        raise CacheError(f"{folder} was changed since the backbone configuration was made with it; put the original "
                         "snapshot back, or re-embed the images and refit the head with the new one.")
    return folder


def fetch(handle: str) -> Path:
    """The local folder of a ``hf://`` or ``kaggle://`` handle, downloaded (or found in the cache)."""
    try:
        if handle.startswith("hf://"):
            import huggingface_hub

            path = huggingface_hub.snapshot_download(handle.removeprefix("hf://"),
                                                     allow_patterns=["*.json", "*.safetensors"])
        else:
            import kagglehub

            path = kagglehub.model_download(handle.removeprefix("kaggle://"))
    except ImportError as exc:
        raise MissingDependencyError(f'{{param}} {handle} needs {exc.name}: pip install "featx[hub]".',
                                     param="backbone") from None
    except Exception as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise WeightsUnavailableError(
            f"Could not download {handle} ({reason}). kagglehub keeps downloads in $KAGGLEHUB_CACHE (default "
            "~/.cache/kagglehub) and Hugging Face in $HF_HOME (default ~/.cache/huggingface): download it on a "
            "machine with internet and copy that cache here, or pass the snapshot folder as {param}.",
            reason=reason, param="backbone",
        ) from None
    return Path(path)


def resolve_hub(backbone: str, *, weights: str | None, image_size: int | None, resize: str, pooling: str | None,
                preprocess: str | None, seed: int, random_id: str) -> EmbedConfig:
    """The :class:`EmbedConfig` of a keras-hub backbone; ``random_id`` names random weights (``--weights none``)."""
    from featx.backbones.preprocessing import normalization_mode

    require_keras_hub()
    if preprocess is not None:
        raise OptionError("{param} applies to custom .keras backbones only: a transformer backbone is normalised as "
                          "its snapshot declares. Drop {param}.", param="preprocess")
    spec = get_hub_backbone(backbone)
    text = str(backbone)
    if weights == "none":
        if spec is None:
            raise OptionError("{param} none (random weights) applies to the curated keras-hub names only; a handle or "
                              "folder brings its own weights.", param="weights")
        return _config(spec.name, spec.family, random_id, None, image_size or spec.input_size, spec.input_size,
                       _patch(spec), resize, pooling, normalization_mode(*_defaults(spec.family)), seed)
    if weights not in (None, "pretrained"):
        raise OptionError(f"{{param}} {weights!r}: a transformer backbone brings its own weights; use pretrained "
                          "(default) or none.", param="weights")
    if spec is not None:
        _pooling(spec.name, HUB_FAMILIES[spec.family], pooling)  # before a download, not after
        folder, label = fetch(spec.handle), spec.name
    elif text.startswith(HANDLE_SCHEMES):
        folder, label = fetch(text), text
    else:
        folder = Path(text).expanduser().resolve()
        label = folder.name
    snapshot = Snapshot.read(folder)
    default_mean, default_std = _defaults(snapshot.family)
    mode = normalization_mode(snapshot.mean or default_mean, snapshot.std or default_std)
    return _config(label, snapshot.family, f"sha256:{tree_sha256(folder)}", str(folder),
                   image_size or snapshot.input_size, snapshot.input_size, snapshot.patch_size, resize, pooling, mode,
                   seed)


def _defaults(family: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    return HUB_FAMILIES[family].mean, HUB_FAMILIES[family].std


def _patch(spec: HubBackboneSpec) -> int:
    return int(dict(spec.arch)["patch_size"])


def _config(label: str, family_name: str, weights: str, folder: str | None, size: int, native: int, patch: int,
            resize: str, pooling: str | None, mode: str, seed: int) -> EmbedConfig:
    family = HUB_FAMILIES[family_name]
    pooling = _pooling(label, family, pooling)
    if size % patch:
        raise OptionError(f"{{param}} {size} is not a multiple of {label}'s patch size {patch}.", param="image_size")
    if size != native and not family.interpolates:
        raise OptionError(f"{{param}} {size}: {label} runs at its native {native} pixels only.", param="image_size")
    return EmbedConfig(backbone=f"hub:{label}", weights=weights, input_size=size, resize=resize, pooling=pooling,
                       preprocessing=mode, model_path=folder, seed=seed)


def _pooling(label: str, family, pooling: str | None) -> str:
    """``pooling``, or the family's default; refused in one line if the family does not offer it."""
    pooling = pooling or family.default_pooling
    if pooling not in family.poolings:
        raise OptionError(f"{{param}} {pooling}: {label} ({family.name}) pools {', '.join(family.poolings)}.",
                          param="pooling")
    return pooling


def uses_keras_hub(keras_file: str | Path) -> bool:
    """Whether a ``.keras`` file holds keras-hub layers (a fine-tuned or exported transformer):
    keras-hub must be imported before loading it, so that its classes are known."""
    import zipfile

    try:
        with zipfile.ZipFile(keras_file) as archive:
            return b'"keras_hub' in archive.read("config.json")
    except (OSError, KeyError, zipfile.BadZipFile):
        return False


def kaggle_cache_folder(handle: str) -> Path:
    """Where kagglehub keeps a versioned ``kaggle://owner/model/framework/variation/version`` download."""
    root = Path(os.environ.get("KAGGLEHUB_CACHE") or Path.home() / ".cache" / "kagglehub")
    return root / "models" / Path(*handle.removeprefix("kaggle://").split("/"))


def list_hub_weights(pattern: str | None = None) -> list[dict]:
    """One row per curated keras-hub backbone: its pinned handle, where kagglehub keeps it, and
    whether it is there (``present``: a preset with config.json; else ``missing``)."""
    rows = []
    for name in list_hub_backbones(pattern):
        spec = HUB_BACKBONES[name]
        folder = kaggle_cache_folder(spec.handle)
        rows.append({"backbone": name, "handle": spec.handle, "path": str(folder),
                     "status": "present" if (folder / "config.json").is_file() else "missing"})
    return rows
