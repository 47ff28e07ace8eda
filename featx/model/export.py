"""One deployable model: raw RGB images of any size in, class probabilities out.

Resizing (as featx reads images: bilinear, stretch/crop/pad; a transformer snapshot's Pillow resize
and centre crop, :class:`featx.backbones.pillow_resize.PillowResize`) and the backbone's
preprocessing are inside the model, and the class names travel in the file, so serving code needs no
knowledge of the backbone (a ``.keras`` file holding PillowResize loads after importing that
module; a SavedModel needs nothing; ONNX and TFLite were not tried with it). ``keras`` and
``onnx`` export on every Keras backend (ONNX through the backend's own converter: tf2onnx, jax2onnx
or torch.onnx); ``savedmodel`` and ``tflite`` are TensorFlow formats and need Keras on TensorFlow.
"""

from __future__ import annotations

import importlib.util
import json
import os
import tempfile
from pathlib import Path

from featx.backbones.preprocessing import resize_layer
from featx.backend import import_keras, import_tensorflow
from featx.cache.outputs import check_outputs
from featx.checks import check_choice
from featx.config import EmbedConfig
from featx.errors import MissingDependencyError, OptionError
from featx.model.build import build_classifier
from featx.model.file import load_model_file, write_metadata

FORMATS = ("keras", "onnx", "savedmodel", "tflite")
TENSORFLOW_FORMATS = ("savedmodel", "tflite")
SUFFIXES = {"keras": (".keras",), "onnx": (".onnx",), "tflite": (".tflite",)}  # savedmodel: a folder
SAVED_MODEL_FILES = ("saved_model.pb", "variables", "assets")
ONNX_CONVERTERS = {"tensorflow": "tf2onnx", "jax": "jax2onnx", "torch": "onnxscript"}  # per backend


def export(source, output: str | os.PathLike, *, format: str = "keras", backend: str | None = None) -> Path:
    """Export a head (fitted Head or folder) or a fine-tuned ``.keras`` model to ``output``.

    ``backend`` is the Keras backend that builds and converts the model (default ``$KERAS_BACKEND``,
    else tensorflow)."""
    check_choice("format", format, FORMATS)
    check_outputs({"output": output}, inputs={"source": getattr(source, "path", source)},
                  suffixes={"output": SUFFIXES[format]} if format in SUFFIXES else {},
                  writes={"output": SAVED_MODEL_FILES} if format == "savedmodel" else {})
    keras = import_keras(backend)
    _check_format(format, keras.backend.backend())
    output = Path(output)
    classifier, metadata = _classifier(source)
    config = EmbedConfig.from_record(metadata["config"], metadata["sources"], metadata.get("fingerprint"))
    model = any_size_model(classifier, config)
    metadata = {**metadata, "kind": "exported", "input": "RGB, uint8 or float 0-255, any size"}
    output.parent.mkdir(parents=True, exist_ok=True)
    if format == "keras":
        model.save(output)
        write_metadata(output, metadata)
    elif format == "onnx":
        spec = keras.InputSpec(shape=(None, None, None, 3), dtype="float32", name="image")  # any batch, any size
        model.export(str(output), format="onnx", input_signature=[spec], verbose=False)
        output.with_suffix(output.suffix + ".json").write_text(json.dumps(metadata, default=str))
    elif format == "savedmodel":
        model.export(str(output), format="tf_saved_model", verbose=False)
        (output / "assets").mkdir(exist_ok=True)
        (output / "assets" / "featx.json").write_text(json.dumps(metadata, default=str))
    else:
        _export_tflite(model, output, metadata)
    return output


def _check_format(format: str, backend: str) -> None:
    """Refuse, in one line, a format this backend cannot write or whose converter is missing."""
    if format in TENSORFLOW_FORMATS and backend != "tensorflow":
        raise OptionError(f"{{param}} {format} is a TensorFlow format and needs Keras on TensorFlow (this run is on "
                          f"{backend}): run with backend tensorflow, or export keras or onnx.", param="format")
    if format == "onnx":
        missing = [m for m in ("onnx", ONNX_CONVERTERS[backend]) if importlib.util.find_spec(m) is None]
        if missing:  # jax2onnx brings flax, orbax and more: it is not in the extra
            install = " ".join(dict.fromkeys(m if m == "jax2onnx" else "'featx[onnx]'" for m in missing))
            raise MissingDependencyError(f"{{param}} onnx on {backend} needs {' and '.join(missing)}, not installed: "
                                         f"pip install {install}.", param="format")


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
    tf = import_tensorflow("TFLite export")
    with tempfile.TemporaryDirectory() as folder:
        model.export(folder, format="tf_saved_model", verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder)
        output.write_bytes(converter.convert())
    # TFLite files have no free-form metadata without extra tooling: the class names go beside it.
    output.with_suffix(output.suffix + ".json").write_text(json.dumps(metadata, default=str))


def class_names(path: str | os.PathLike) -> list[str]:
    """The class names stored with an exported model (``.keras``, ``.onnx``, SavedModel folder or ``.tflite``)."""
    from featx.model.file import read_metadata

    path = Path(path)
    if path.is_dir():
        return json.loads((path / "assets" / "featx.json").read_text())["classes"]
    if path.suffix in (".tflite", ".onnx"):  # no free-form metadata inside: the class names are beside it
        return json.loads(path.with_suffix(path.suffix + ".json").read_text())["classes"]
    return read_metadata(path)["classes"]


__all__ = ["FORMATS", "any_size_model", "class_names", "export"]
