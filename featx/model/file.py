"""Whole Keras models built from a head: raw RGB in, probabilities (or features) out, and the
featx metadata (class names, backbone configuration) stored inside the ``.keras`` file."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

from featx.backend import import_keras, import_keras_hub
from featx.errors import FeatxError

METADATA_ENTRY = "featx.json"


def write_metadata(path: str | os.PathLike, metadata: dict) -> None:
    """Add featx's metadata (class names, configuration) to a saved ``.keras`` file."""
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr(METADATA_ENTRY, json.dumps(metadata, default=str))


def read_metadata(path: str | os.PathLike) -> dict:
    """The featx metadata of a ``.keras`` file written by fine-tune or export."""
    try:
        with zipfile.ZipFile(path) as archive:
            return json.loads(archive.read(METADATA_ENTRY))
    except (OSError, zipfile.BadZipFile, KeyError, json.JSONDecodeError):
        raise FeatxError(f"{path} is not a model written by 'featx fine-tune' or 'featx export'.") from None


def load_model_file(path: str | os.PathLike):
    """Load a featx ``.keras`` model safely (no code from the file runs) with its metadata."""
    keras = import_keras()
    metadata = read_metadata(path)
    if str(metadata.get("config", {}).get("backbone", "")).startswith("hub:"):
        import_keras_hub()  # registers the keras-hub classes the file names
    if str(metadata.get("config", {}).get("resize", "")).startswith("pil:"):
        import featx.backbones.pillow_resize  # noqa: F401 - registers the resize layer an export of it holds
    try:
        model = keras.saving.load_model(Path(path), compile=False, safe_mode=True)
    except Exception as exc:
        raise FeatxError(f"{path} could not be loaded as a Keras model ({type(exc).__name__}: {exc}).") from None
    return model, metadata
