"""Building a backbone from its configuration: a Keras application row, a ``.keras`` file or a
keras-hub transformer; and its vector width, from the table when it knows it."""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator

from featx.backbones.applications import get_backbone
from featx.backbones.hub import uses_keras_hub
from featx.backend import (
    BACKENDS,
    DEFAULT_BACKEND,
    import_keras,
    import_keras_hub,
    keras_cache_dir,
    seeded,
    tensorflow_hidden,
)
from featx.config import EmbedConfig
from featx.errors import FeatxError, OptionError, WeightsUnavailableError, first_line


def known_feature_dim(config: EmbedConfig) -> int | None:
    """The vector width from the backbone table, without building anything (None for a ``.keras``
    file or a transformer: only building them tells)."""
    if config.is_custom or config.is_hub:
        return None
    return get_backbone(config.backbone).feature_dim


def feature_dim(config: EmbedConfig) -> int:
    """The vector width: from the backbone table, else by building the backbone (the one heavy case)."""
    known = known_feature_dim(config)
    return known if known is not None else int(build_backbone(config).output_shape[-1])


def build_backbone(config: EmbedConfig, backend: str | None = None):
    """The headless Keras model of ``config`` whose output is the pooled (batch, D) vector, on ``backend``."""
    keras = import_keras(backend)
    if config.is_hub:
        from featx.backbones.hub_build import build_hub_backbone

        return build_hub_backbone(config)
    if config.is_custom:
        return _load_custom(config)
    spec = get_backbone(config.backbone)
    check_runs_on(spec, keras.backend.backend())
    constructor = getattr(keras.applications, spec.name)
    weights: str | None
    if config.weights == "imagenet":
        weights = "imagenet"
    elif config.weights.startswith("none:"):
        _check_random_weights(config.weights, keras.backend.backend())
        weights = None
    else:
        weights = config.source_file()
    kwargs = dict(
        include_top=False,
        weights=weights,
        input_shape=(config.input_size, config.input_size, 3),
        pooling=config.pooling,
    )
    with seeded(config.seed), _dtype_policy(keras, config.precision), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            model = constructor(**kwargs)
        except ValueError as exc:  # Keras validates input sizes and weight files this way
            # its warnings (one per layer of a weights file of another architecture) say no more
            raise FeatxError(f"Cannot build {spec.name}: {first_line(exc)}") from exc
        except Exception as exc:  # Keras' get_file raises a bare Exception when a download fails
            if weights == "imagenet" and "URL fetch failure" in str(exc):
                raise _download_error(spec.name, exc) from exc
            raise
    for warning in caught:  # the build succeeded: its warnings are news
        warnings.warn_explicit(warning.message, warning.category, warning.filename, warning.lineno)
    model.trainable = False
    return model


def check_runs_on(spec, backend: str) -> None:
    """Refuse a registry backbone on a backend that computes it wrongly, naming those that work."""
    if backend in spec.wrong_on:
        works = " or ".join(b for b in BACKENDS if b not in spec.wrong_on)
        raise OptionError(
            f"{{param}} {backend}: Keras computes {spec.name} wrongly on {backend} (a Keras bug); run it on {works}.",
            param="backend",
        )


def _check_random_weights(identity: str, backend: str) -> None:
    """Random weights (``none:seed=N``) are drawn by the backend's own generator: another backend's differ."""
    made_on = identity.partition(":backend=")[2] or DEFAULT_BACKEND
    if made_on != backend:
        raise OptionError(
            f"{{param}} {backend}: these random weights ({identity}) were drawn on {made_on}, and each backend "
            f"draws its own; run on {made_on}.", param="backend",
        )


def _load_custom(config: EmbedConfig):
    keras = import_keras()
    path = config.source_file()
    hub = uses_keras_hub(path)  # a fine-tuned transformer: keras-hub brings its classes
    if hub:
        import_keras_hub()
    try:
        with tensorflow_hidden() if hub else contextlib.nullcontext():
            model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as exc:
        raise FeatxError(
            f"{{param}}: {config.model_path!r} could not be loaded as a Keras model: {first_line(exc)}",
            param="backbone",
        ) from exc
    return _wrap_custom(keras, model, config)


def _wrap_custom(keras, model, config: EmbedConfig):
    """A loaded custom model as a frozen (batch, D) feature model at the configuration's size."""
    if len(model.inputs) != 1 or model.inputs[0].shape[-1] != 3:
        raise FeatxError(
            f"{{param}}: {config.model_path!r} must take one RGB image input (..., 3); "
            f"its inputs are {[tuple(i.shape) for i in model.inputs]}.", param="backbone",
        )
    inputs = keras.Input((config.input_size, config.input_size, 3))
    try:
        outputs = model(inputs, training=False)
    except ValueError as exc:  # a fixed input size other than the one asked
        raise OptionError(f"{{param}} {config.input_size} does not fit {config.model_path!r}: "
                          f"{first_line(exc)[:200].rstrip('.')}. Give the size it takes, or omit {{param}}.",
                          param="image_size") from None
    if len(outputs.shape) == 4:
        pool = keras.layers.GlobalAveragePooling2D if config.pooling == "avg" else keras.layers.GlobalMaxPooling2D
        outputs = pool()(outputs)
    elif len(outputs.shape) != 2:
        raise FeatxError(
            f"{{param}}: {config.model_path!r} outputs shape {tuple(outputs.shape)}; featx needs a "
            "4-D feature map (pooled) or a 2-D vector.", param="backbone",
        )
    wrapped = keras.Model(inputs, outputs, name=f"featx_{model.name}")
    wrapped.trainable = False
    return wrapped


@contextlib.contextmanager
def _dtype_policy(keras, precision: str) -> Iterator[None]:
    """Layers built inside compute in ``precision`` (Keras mixed precision: float32 variables),
    then Keras' global policy is restored."""
    if precision == "float32":
        yield
        return
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(f"mixed_{precision}")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _download_error(name: str, exc: BaseException) -> WeightsUnavailableError:
    match = re.search(r"(https?://\S+?):? ", str(exc) + " ")
    url = match.group(1) if match else "(unknown URL)"
    file_name = url.rsplit("/", 1)[-1]
    reason = str(exc).split(" -- ", 1)[-1].strip()
    return WeightsUnavailableError(
        f"Could not download the ImageNet weights for {name} ({reason}). Keras wanted {file_name} "
        f"from {url}: fetch it on a machine with internet, then run 'featx weights import {file_name}', "
        f"which checks it and puts it in {keras_cache_dir()}/ ('featx weights list' shows every "
        "backbone's file); or set {param} to a weights file (or to none for random weights).",
        reason=reason, param="weights",
    )
