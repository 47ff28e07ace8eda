"""Transformer backbones through keras-hub: which name means which snapshot, and what it declares.

``--backbone`` takes a curated keras-hub preset name (``dinov2_small``, see
``featx.backbones.hub_table.HUB_BACKBONES``), a ``hf://org/model`` or ``kaggle://...`` handle, or a local
folder: a keras-hub preset (``save_to_preset``) or a Hugging Face snapshot (``config.json`` with a
``model_type``). Each resolves to a local folder whose weights and configs are hashed into the
configuration, so a changed snapshot is a new cache; what it declares (input size, normalisation,
image pipeline: :mod:`featx.backbones.hub_snapshot`) becomes the configuration here, without Keras.
:mod:`featx.backbones.hub_build` builds the model from the same folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from featx.backbones.hub_pipeline import ImagePipeline
from featx.backbones.hub_snapshot import KERAS_HUB_FAMILIES, TRANSFORMERS_FAMILIES, Snapshot  # noqa: F401 - re-exported
from featx.backbones.hub_table import HUB_BACKBONES, HUB_FAMILIES, HubBackboneSpec, get_hub_backbone, list_hub_backbones
from featx.config import EmbedConfig, sha256_once
from featx.errors import CacheError, MissingDependencyError, OptionError, WeightsUnavailableError

HANDLE_SCHEMES = ("hf://", "kaggle://")
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


def resolve_hub(backbone: str, *, weights: str | None, image_size: int | None, resize: str | None,
                pooling: str | None, preprocess: str | None, seed: int, random_id: str) -> EmbedConfig:
    """The :class:`EmbedConfig` of a keras-hub backbone; ``random_id`` names random weights (``--weights none``).
    ``resize`` None follows the snapshot's declared pipeline (scaled to ``image_size``), else stretch."""
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
                       _patch(spec), resize or "stretch", pooling, normalization_mode(*_defaults(spec.family)), seed)
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
    size = image_size or snapshot.input_size
    return _config(label, snapshot.family, f"sha256:{tree_sha256(folder)}", str(folder), size, snapshot.input_size,
                   snapshot.patch_size, resize or _declared_resize(snapshot, size), pooling, mode, seed)


def _declared_resize(snapshot: Snapshot, size: int) -> str:
    """The snapshot's own resize at ``size`` pixels: its pipeline, scaled when another size is asked."""
    if snapshot.resize is None:
        return "stretch"
    if not snapshot.resize.startswith("pil:"):
        return snapshot.resize
    return ImagePipeline.from_spec(snapshot.resize).scaled(size, snapshot.input_size).spec


def describe_snapshot(folder: str | Path) -> dict:
    """What a model folder declares and featx follows by default, read without Keras (``featx backbones FOLDER``)."""
    from featx.backbones.hub_pipeline import describe_resize
    from featx.backbones.preprocessing import normalization_mode

    snapshot = Snapshot.read(Path(folder).expanduser().resolve())
    default_mean, default_std = _defaults(snapshot.family)
    resize = _declared_resize(snapshot, snapshot.input_size)
    return {"folder": str(snapshot.folder), "format": snapshot.format, "family": snapshot.family,
            "input_size": snapshot.input_size, "patch_size": snapshot.patch_size, "resize": resize,
            "pixels": describe_resize(resize, snapshot.input_size),
            "preprocessing": normalization_mode(snapshot.mean or default_mean, snapshot.std or default_std),
            "pooling": HUB_FAMILIES[snapshot.family].default_pooling}


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
