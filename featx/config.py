"""What makes two feature vectors comparable: the backbone configuration and its fingerprint.

A cache, a head and an exported model all carry the configuration that produced their features;
anything that changes the numbers (backbone, weights, input size, resize mode, pooling,
preprocessing) is part of the fingerprint, so vectors of different configurations never mix.
Resolving a configuration does not import TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

from featx.backbones import PREPROCESSING_MODES, get_backbone
from featx.errors import FeatxError, OptionError
from featx.images import RESIZE_MODES

POOLING_MODES = ("avg", "max")
CUSTOM_MODEL_SUFFIX = ".keras"


@dataclass(frozen=True)
class EmbedConfig:
    """Everything that determines a feature vector, plus where the model comes from."""

    backbone: str  # registry name, or "custom:<file name>:sha256:<hex>"
    weights: str  # "imagenet", "none:seed=<n>", "<file name>:sha256:<hex>" or "embedded"
    input_size: int
    resize: str
    pooling: str
    preprocessing: str
    # Where to load from; not part of the identity (the sha256 above is).
    model_path: str | None = field(default=None, compare=False)
    weights_path: str | None = field(default=None, compare=False)
    seed: int = field(default=0, compare=False)

    def identity(self) -> dict[str, object]:
        """The fields that change the numbers, as stored in caches and heads."""
        data = asdict(self)
        for key in ("model_path", "weights_path", "seed"):
            data.pop(key)
        return data

    def sources(self) -> dict[str, object]:
        """Where the model and weights were loaded from: not identity, but needed to rebuild."""
        return {"model_path": self.model_path, "weights_path": self.weights_path, "seed": self.seed}

    @classmethod
    def from_record(cls, identity: dict, sources: dict | None = None, fingerprint: str | None = None) -> "EmbedConfig":
        """Rebuild a configuration stored by a cache or head (``identity()`` + ``sources()``),
        checking it against the stored ``fingerprint`` when one is given."""
        try:
            config = cls(**identity, **(sources or {}))
        except TypeError as exc:
            raise FeatxError(f"stored backbone configuration is damaged ({exc}).") from None
        if fingerprint is not None and config.fingerprint != fingerprint:
            raise FeatxError("stored backbone configuration does not match its fingerprint; re-run 'featx embed'.")
        return config

    @property
    def fingerprint(self) -> str:
        """A short stable hash of :meth:`identity`."""
        return fingerprint_of(self.identity())

    @property
    def is_custom(self) -> bool:
        return self.model_path is not None

    @property
    def display_name(self) -> str:
        """A short name for file names and messages."""
        return Path(self.model_path).stem if self.model_path else self.backbone


def fingerprint_of(identity: dict[str, object]) -> str:
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def _choice(option: str, value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise OptionError(f"{option} must be one of {', '.join(allowed)}; got {value!r}.")
    return value


def resolve_config(
    backbone: str,
    *,
    weights: str | None = None,
    image_size: int | None = None,
    resize: str = "stretch",
    pooling: str = "avg",
    preprocess: str | None = None,
    seed: int = 0,
) -> EmbedConfig:
    """Validate user options into an :class:`EmbedConfig` (registry name or ``.keras`` path)."""
    _choice("--resize", resize, RESIZE_MODES)
    _choice("--pooling", pooling, POOLING_MODES)
    if preprocess is not None:
        _choice("--preprocess", preprocess, PREPROCESSING_MODES)
    if image_size is not None and image_size < 1:
        raise OptionError(f"--image-size must be a positive number of pixels; got {image_size}.")
    if str(backbone).endswith(CUSTOM_MODEL_SUFFIX) or os.path.sep in str(backbone):
        return _custom_config(Path(backbone), weights, image_size, resize, pooling, preprocess)

    spec = get_backbone(backbone)
    if preprocess is not None and preprocess != spec.preprocessing:
        raise OptionError(
            f"--preprocess applies to custom .keras backbones only: {spec.name} always uses its "
            f"own '{spec.preprocessing}' preprocessing. Drop --preprocess."
        )
    size = image_size or spec.input_size
    if size < spec.min_input_size:
        raise OptionError(
            f"--image-size {size} is too small for {spec.name}: it needs at least "
            f"{spec.min_input_size} pixels."
        )
    weights_id, weights_path = _weights_identity(weights or "imagenet", seed)
    return EmbedConfig(
        backbone=spec.name,
        weights=weights_id,
        input_size=size,
        resize=resize,
        pooling=pooling,
        preprocessing=spec.preprocessing,
        weights_path=weights_path,
        seed=seed,
    )


def _weights_identity(weights: str, seed: int) -> tuple[str, str | None]:
    if weights == "imagenet":
        # Keras pins each ImageNet file by hash when it downloads it, so the name identifies it.
        return "imagenet", None
    if weights == "none":
        return f"none:seed={seed}", None
    path = Path(weights).expanduser()
    if not path.is_file():
        raise OptionError(
            f"--weights {weights!r} is neither 'imagenet', 'none' nor an existing weights file."
        )
    return f"{path.name}:sha256:{sha256_file(path)}", str(path.resolve())


def _custom_config(
    path: Path,
    weights: str | None,
    image_size: int | None,
    resize: str,
    pooling: str,
    preprocess: str | None,
) -> EmbedConfig:
    if not path.is_file():
        raise OptionError(f"--backbone {str(path)!r}: no such .keras model file.")
    if path.suffix != CUSTOM_MODEL_SUFFIX:
        raise OptionError(f"--backbone {str(path)!r}: a custom backbone must be a .keras file.")
    if weights is not None:
        raise OptionError(
            "--weights does not apply to a custom .keras backbone: its weights are in the file."
        )
    size = image_size or _keras_file_input_size(path)
    return EmbedConfig(
        backbone=f"custom:{path.name}:sha256:{sha256_file(path)}",
        weights="embedded",
        input_size=size,
        resize=resize,
        pooling=pooling,
        preprocessing=preprocess or "none",
        model_path=str(path.resolve()),
    )


def _keras_file_input_size(path: Path) -> int:
    """The square input size declared in a .keras file's config, read without loading Keras."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise OptionError(f"--backbone {str(path)!r} is not a valid .keras model file ({exc}).")
    for layer in config.get("config", {}).get("layers", []):
        shape = layer.get("config", {}).get("batch_shape")
        if layer.get("class_name") == "InputLayer" and shape and len(shape) == 4:
            height, width = shape[1], shape[2]
            if height and width and height == width:
                return int(height)
            break
    raise OptionError(
        f"--backbone {str(path)!r} does not declare a fixed square input size; "
        "pass --image-size N."
    )
