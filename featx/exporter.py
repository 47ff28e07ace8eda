"""One deployable model: raw RGB images of any size in, class probabilities out.

Resizing (as featx reads images: bilinear, stretch/crop/pad) and the backbone's preprocessing are
inside the model, and the class names travel in the file, so serving code needs neither featx nor
any knowledge of the backbone.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from featx.backend import import_keras
from featx.config import EmbedConfig
from featx.errors import OptionError
from featx.modelfile import build_classifier, load_model_file, write_metadata
from featx.options import check_choice
from featx.preprocessing import resize_layer

FORMATS = ("keras", "savedmodel", "tflite")


def export(source, output: str | os.PathLike, *, format: str = "keras") -> Path:
    """Export a head (fitted Head or folder) or a fine-tuned ``.keras`` model to ``output``."""
    check_choice("format", format, FORMATS)
    output = Path(output)
    classifier, metadata = _classifier(source)
    config = EmbedConfig.from_record(metadata["config"], metadata["sources"], metadata.get("fingerprint"))
    model = any_size_model(classifier, config)
    metadata = {**metadata, "kind": "exported", "input": "RGB, uint8 or float 0-255, any size"}
    output.parent.mkdir(parents=True, exist_ok=True)
    if format == "keras":
        if output.suffix != ".keras":
            raise OptionError(f"{{param}}: {output} must end in .keras (a Keras model file).", param="output")
        model.save(output)
        write_metadata(output, metadata)
    elif format == "savedmodel":
        model.export(str(output), format="tf_saved_model", verbose=False)
        (output / "assets").mkdir(exist_ok=True)
        (output / "assets" / "featx.json").write_text(json.dumps(metadata, default=str))
    else:
        _export_tflite(model, output, metadata)
    return output


def _classifier(source):
    """The fixed-size classifier and its metadata, from a head or a fine-tuned model file."""
    if isinstance(source, (str, os.PathLike)) and str(source).endswith(".keras"):
        return load_model_file(source)
    from featx.heads.store import load_head

    head = source if hasattr(source, "estimator") else load_head(source)
    classifier, _, _ = build_classifier(head, head.embed_config())
    return classifier, {"classes": list(head.classes), "config": head.config, "sources": head.sources,
                        "fingerprint": head.fingerprint, "head": head.name, "head_kind": head.kind}


def any_size_model(classifier, config: EmbedConfig):
    """Wrap a (S, S, 3) classifier: any image size in, resized inside exactly as featx resizes."""
    keras = import_keras()
    inputs = keras.Input((None, None, 3), name="image")
    resized = resize_layer(config.input_size, config.resize)(inputs)
    # training=False is recorded in the graph: Dropout and BatchNormalization stay in inference mode
    # whatever the caller passes (Keras may otherwise resolve an unset flag to training here).
    return keras.Model(inputs, classifier(resized, training=False), name="featx_exported")


def _export_tflite(model, output: Path, metadata: dict) -> None:
    tf, _ = import_keras()
    with tempfile.TemporaryDirectory() as folder:
        model.export(folder, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        output.write_bytes(converter.convert())
    # TFLite files have no free-form metadata without extra tooling: the class names go beside it.
    output.with_suffix(output.suffix + ".json").write_text(json.dumps(metadata, default=str))


def class_names(path: str | os.PathLike) -> list[str]:
    """The class names stored with an exported model (``.keras``, SavedModel folder or ``.tflite``)."""
    from featx.modelfile import read_metadata

    path = Path(path)
    if path.is_dir():
        return json.loads((path / "assets" / "featx.json").read_text())["classes"]
    if path.suffix == ".tflite":
        return json.loads(path.with_suffix(".tflite.json").read_text())["classes"]
    return read_metadata(path)["classes"]


__all__ = ["FORMATS", "any_size_model", "class_names", "export"]
