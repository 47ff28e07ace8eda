"""What a user asks of an embed run, in one object that every entry point builds and passes inward.

``featx.embed``, ``featx.Embedder``, ``featx embed`` and the demo each turn their own arguments into
one :class:`EmbedOptions`; everything below them takes that object (or the :class:`EmbedConfig` it
resolves to). A new option is a field here, plus the argument that sets it in each entry point (a
test checks that they agree). :class:`RunOptions` say how to run and never change the numbers; the
other fields resolve into the configuration that does. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import importlib.util
import json
import os
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

from featx.backend import DEFAULT_BACKEND, check_backend, resolve_backend
from featx.backbones import DEFAULT_BACKBONE, PREPROCESSING_MODES, get_backbone
from featx.cache.segments import STORAGE_DTYPES
from featx.config import EmbedConfig, sha256_once
from featx.errors import MissingDependencyError, MissingFileError, OptionError
from featx.images import DEFAULT_MAX_PIXELS, RESIZE_MODES

POOLING_MODES = ("avg", "max")
ENGINES = ("local", "ray")  # who decodes and embeds: this process, or a Ray cluster (featx.ray_engine)
CUSTOM_MODEL_SUFFIX = ".keras"


def check_choice(param: str, value: object, allowed: tuple[str, ...]) -> None:
    """Raise :class:`OptionError` naming ``param`` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise OptionError(f"{{param}} must be one of {', '.join(allowed)}; got {value!r}.", param=param)


def check_positive(param: str, value: object, what: str = "a positive integer") -> None:
    """Raise :class:`OptionError` naming ``param`` unless ``value`` is an integer of at least 1."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise OptionError(f"{{param}} must be {what}; got {value!r}.", param=param)


def default_workers() -> int:
    """Decoding threads: one per core, at least two so decoding overlaps the backbone."""
    return max(2, os.cpu_count() or 2)


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How an embed run is carried out; none of these change the vectors the backbone computes."""

    batch_size: int = 32  # images per backbone call
    workers: int | None = None  # decoding threads; None: one per core (at least two); engine ray: embedding actors
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are skipped undecoded (decompression bombs)
    # How the cache stores vectors (float16: half the bytes, within 1e-3); not in the fingerprint,
    # since the backbone computes the same vectors; recorded in the cache, which refuses another.
    # None: the cache's own, float32 for a new cache.
    dtype: str | None = None
    backend: str | None = None  # Keras backend: tensorflow, jax or torch; None: KERAS_BACKEND, else tensorflow
    # Ray engine only: the cluster (None: a local Ray instance, or the one RAY_ADDRESS / ray.init names)
    # and the GPUs each embedding worker holds. With it, ``workers`` is the number of embedding workers.
    engine: str = "local"
    address: str | None = None
    gpus_per_worker: float = 0

    def __post_init__(self) -> None:
        check_positive("batch_size", self.batch_size)
        check_choice("engine", self.engine, ENGINES)
        if self.engine == "ray" and importlib.util.find_spec("ray") is None:  # said before any file is hashed
            raise MissingDependencyError('{param} is ray, which needs Ray Data (not installed): pip install "featx[ray]"',
                                         param="engine")
        if isinstance(self.gpus_per_worker, bool) or not isinstance(self.gpus_per_worker, (int, float)) \
                or not self.gpus_per_worker >= 0:
            raise OptionError(f"{{param}} must be a number of GPUs, 0 or more; got {self.gpus_per_worker!r}.",
                              param="gpus_per_worker")
        for name, unset in (("address", None), ("gpus_per_worker", 0)):
            if self.engine != "ray" and getattr(self, name) != unset:
                raise OptionError("{param} applies to the Ray engine only; choose engine ray or drop {param}.",
                                  param=name)
        if self.dtype is not None:
            check_choice("dtype", self.dtype, STORAGE_DTYPES)
        check_backend(self.backend)
        if self.workers is not None:
            check_positive("workers", self.workers)
        check_positive("max_pixels", self.max_pixels)

    @property
    def decode_workers(self) -> int:
        """``workers``, or :func:`default_workers`."""
        return self.workers or default_workers()

    def run_options(self) -> "RunOptions":
        """Only the run settings (an :class:`EmbedOptions` is also a :class:`RunOptions`)."""
        return RunOptions(**{f.name: getattr(self, f.name) for f in fields(RunOptions)})


@dataclass(frozen=True)
class EmbedOptions(RunOptions):
    """A backbone configuration as the user names it, plus the :class:`RunOptions`.

    ``backbone`` is a registry name (see ``featx.list_backbones()``) or a ``.keras`` model file;
    ``weights`` is ``"imagenet"`` (default for registry backbones), ``"none"`` (random, from
    ``seed``) or a weights file; ``image_size`` overrides the backbone's input size; ``resize``
    is stretch, crop or pad; ``pooling`` avg or max; ``preprocess`` (custom backbones only) one of
    caffe, tf, torch, none. :meth:`resolve` validates them into an :class:`EmbedConfig`.
    """

    backbone: str = DEFAULT_BACKBONE
    weights: str | None = None
    image_size: int | None = None
    resize: str = "stretch"
    pooling: str = "avg"
    preprocess: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("resize", self.resize, RESIZE_MODES)
        check_choice("pooling", self.pooling, POOLING_MODES)
        if self.preprocess is not None:
            check_choice("preprocess", self.preprocess, PREPROCESSING_MODES)
        if self.image_size is not None:
            check_positive("image_size", self.image_size, "a positive number of pixels")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise OptionError(f"{{param}} must be an integer; got {self.seed!r}.", param="seed")

    def resolve(self) -> EmbedConfig:
        """The :class:`EmbedConfig` these options name; checks files and sizes (no TensorFlow)."""
        if _names_a_file(self.backbone):
            return self._custom_config(Path(self.backbone).expanduser())
        spec = get_backbone(self.backbone)
        if self.preprocess is not None and self.preprocess != spec.preprocessing:
            raise OptionError(
                f"{{param}} applies to custom .keras backbones only: {spec.name} always uses its own "
                f"'{spec.preprocessing}' preprocessing. Drop {{param}}.", param="preprocess",
            )
        size = self.image_size or spec.input_size
        if size < spec.min_input_size:
            raise OptionError(
                f"{{param}}: {size} is too small for {spec.name}: it needs at least {spec.min_input_size} pixels.",
                param="image_size",
            )
        weights_id, weights_path = self._weights_identity()
        return EmbedConfig(
            backbone=spec.name, weights=weights_id, input_size=size, resize=self.resize, pooling=self.pooling,
            preprocessing=spec.preprocessing, weights_path=weights_path, seed=self.seed,
        )

    def _weights_identity(self) -> tuple[str, str | None]:
        weights = self.weights or "imagenet"
        if weights == "imagenet":
            # Keras pins each ImageNet file by hash when it downloads it, so the name identifies it.
            return "imagenet", None
        if weights == "none":  # random weights differ between backends (each has its own generator)
            backend = resolve_backend(self.backend)
            return f"none:seed={self.seed}" + ("" if backend == DEFAULT_BACKEND else f":backend={backend}"), None
        path = Path(weights).expanduser()
        if not path.is_file():
            raise OptionError(
                f"{{param}} {weights!r} is neither 'imagenet', 'none' nor an existing weights file.", param="weights"
            )
        return f"{path.name}:sha256:{sha256_once(path)}", str(path.resolve())

    def _custom_config(self, path: Path) -> EmbedConfig:
        if not path.is_file():
            raise MissingFileError(f"{{param}}: no such .keras model file {str(path)!r}.", param="backbone")
        if path.suffix != CUSTOM_MODEL_SUFFIX:
            raise OptionError(f"{{param}}: {str(path)!r} is not a .keras file; a custom backbone must be one.", param="backbone")
        if self.weights is not None:
            raise OptionError(
                "{param} does not apply to a custom .keras backbone: its weights are in the file.", param="weights"
            )
        size = self.image_size or _keras_file_input_size(path)
        return EmbedConfig(
            backbone=f"custom:{path.name}:sha256:{sha256_once(path)}", weights="embedded", input_size=size,
            resize=self.resize, pooling=self.pooling, preprocessing=self.preprocess or "none",
            model_path=str(path.resolve()),
        )


def _names_a_file(backbone: str) -> bool:
    text = str(backbone)
    return text.endswith(CUSTOM_MODEL_SUFFIX) or os.path.sep in text


def _keras_file_input_size(path: Path) -> int:
    """The square input size declared in a .keras file's config, read without loading Keras."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as exc:
        raise OptionError(f"{{param}}: {str(path)!r} is not a valid .keras model file ({exc}).", param="backbone") from None
    for layer in config.get("config", {}).get("layers", []):
        shape = layer.get("config", {}).get("batch_shape")
        if layer.get("class_name") == "InputLayer" and shape and len(shape) == 4:
            height, width = shape[1], shape[2]
            if height and width and height == width:
                return int(height)
            break
    raise OptionError(
        f"{{param}} is needed: {str(path)!r} does not declare a fixed square input size.", param="image_size"
    )
