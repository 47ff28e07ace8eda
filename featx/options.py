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
from dataclasses import dataclass, fields, replace
from pathlib import Path

from featx.backbones.applications import DEFAULT_BACKBONE, PREPROCESSING_MODES, get_backbone
from featx.backbones.hub_pipeline import ImagePipeline, is_pipeline
from featx.backbones.hub_table import HUB_POOLINGS
from featx.backend import DEFAULT_BACKEND, check_backend, resolve_backend
from featx.cache.segments import STORAGE_DTYPES
from featx.checks import check_choice, check_positive, check_seed
from featx.config import EmbedConfig, sha256_once
from featx.data.images import DEFAULT_MAX_PIXELS, RESIZE_MODES
from featx.errors import MissingDependencyError, MissingFileError, OptionError, OptionTypeError

KERAS_POOLINGS = ("avg", "max")  # of a Keras application's (or custom model's) last feature map
POOLING_MODES = KERAS_POOLINGS + tuple(p for p in HUB_POOLINGS if p not in KERAS_POOLINGS)
PRECISIONS = ("float32", "bfloat16", "float16")  # the backbone's compute dtype (Keras mixed precision)
ENGINES = ("local", "ray")  # who decodes and embeds: this process, or a Ray cluster (featx.engine.ray)
CUSTOM_MODEL_SUFFIX = ".keras"


BATCH_SIZE_LIMIT = 65_536  # the largest batch_size a user may ask for; memory refuses most batches long before this
MAX_WORKERS = 1024  # decoding threads
MAX_INPUT_SIZE = 4096  # pixels per side of the backbone input, for any backbone
BATCH_RAM_SHARE = 0.5  # a batch may take at most this share of the machine's RAM
# A backbone's peak memory per batch, as a multiple of the batch's float32 input: MobileNetV2 on
# TensorFlow peaked at ~26x (4 images of 1024x1024: 1.3 GB over the 0.9 GB baseline; README).
ACTIVATION_FACTOR = 32


def batch_bytes(batch_size: int, input_size: int) -> int:
    """About what one batch takes in memory at its peak: float32 RGB inputs and the activations."""
    return batch_size * input_size * input_size * 3 * 4 * ACTIVATION_FACTOR


def check_batch_memory(batch_size: int, input_size: int, memory: int | None = None) -> None:
    """Refuse, before anything is allocated, a batch that would take more than half this machine's
    RAM (``memory``, default the physical memory): the message says the largest batch that fits."""
    memory = memory if memory is not None else physical_memory()
    if memory is None:
        return
    limit = int(BATCH_RAM_SHARE * memory)
    if batch_bytes(batch_size, input_size) > limit:
        fits = limit // batch_bytes(1, input_size)
        advice = f"give at most {fits}" if fits else "give a smaller input size (image_size)"
        raise OptionError(
            f"{{param}} {batch_size} of {input_size}x{input_size} images needs about "
            f"{batch_bytes(batch_size, input_size) / 2**30:.1f} GiB (inputs and the backbone's activations), more "
            f"than half of this machine's {memory / 2**30:.1f} GiB of RAM; {advice}.", param="batch_size",
        )


def physical_memory() -> int | None:
    """This machine's RAM in bytes, or None where the OS does not say."""
    try:
        return int(os.sysconf("SC_PHYS_PAGES")) * int(os.sysconf("SC_PAGE_SIZE"))
    except (AttributeError, ValueError, OSError):
        return None


def default_workers() -> int:
    """Decoding workers: one per core, at least two so decoding overlaps the backbone."""
    return max(2, os.cpu_count() or 2)


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """How an embed run is carried out; none of these change the vectors the backbone computes."""

    batch_size: int | None = None  # images per backbone call; None: 32 on a CPU, the largest that fits on a GPU
    workers: int | None = None  # decoding workers (processes for a GPU backbone, else threads); None: one per
    # core; engine ray: embedding actors
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
        if self.batch_size is not None:
            check_positive("batch_size", self.batch_size, maximum=BATCH_SIZE_LIMIT)
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
            check_positive("workers", self.workers, maximum=MAX_WORKERS)
        check_positive("max_pixels", self.max_pixels)

    @property
    def decode_workers(self) -> int:
        """``workers``, or :func:`default_workers`."""
        return self.workers or default_workers()

    def run_options(self) -> RunOptions:
        """Only the run settings (an :class:`EmbedOptions` is also a :class:`RunOptions`)."""
        return RunOptions(**{f.name: getattr(self, f.name) for f in fields(RunOptions)})


@dataclass(frozen=True)
class EmbedOptions(RunOptions):
    """A backbone configuration as the user names it, plus the :class:`RunOptions`.

    ``backbone`` is a registry name (see ``featx.list_backbones()``), a ``.keras`` model file, or a
    transformer through keras-hub (a curated name, ``hf://``/``kaggle://`` handle or snapshot folder:
    :mod:`featx.backbones.hub`; ``weights`` then pretrained, the default, or none);
    ``weights`` is ``"imagenet"`` (default for registry backbones), ``"none"`` (random, from
    ``seed``) or a weights file; ``image_size`` overrides the backbone's input size; ``resize``
    is stretch, crop or pad, None for the backbone's own (a transformer snapshot's declared pipeline:
    :mod:`featx.backbones.hub_pipeline`; stretch otherwise); ``pooling`` avg or max (transformers from keras-hub: cls, avg,
    cls+avg or pooled; see :mod:`featx.backbones.hub`), None for the backbone family's default;
    ``preprocess`` (custom backbones only) one of caffe, tf, torch, none; ``jpeg_draft`` decodes
    JPEGs of at least twice the input size at reduced scale (faster, slightly different vectors; off
    under a snapshot's pipeline, whose pixels it would move);
    ``precision`` is the backbone's compute dtype (float32, or bfloat16/float16 mixed precision:
    faster on GPUs, vectors move by ~1e-3). :meth:`resolve` validates them into an :class:`EmbedConfig`.
    """

    backbone: str = DEFAULT_BACKBONE
    weights: str | None = None
    image_size: int | None = None
    resize: str | None = None
    pooling: str | None = None
    preprocess: str | None = None
    seed: int = 0
    jpeg_draft: bool = False
    precision: str = "float32"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_choice("precision", self.precision, PRECISIONS)
        if not isinstance(self.jpeg_draft, bool):
            raise OptionError(f"{{param}} must be True or False; got {self.jpeg_draft!r}.", param="jpeg_draft")
        if not isinstance(self.backbone, (str, os.PathLike)):
            get_backbone(self.backbone)  # names the parameter and the type
        if self.weights is not None and not isinstance(self.weights, (str, os.PathLike)):
            raise OptionTypeError(f"{{param}} must be 'imagenet', 'none' or a weights file path; got {self.weights!r:.60}.",
                                  param="weights")
        if self.resize is not None:
            check_choice("resize", self.resize, RESIZE_MODES)
        if self.pooling is not None:
            check_choice("pooling", self.pooling, POOLING_MODES)
        if self.preprocess is not None:
            check_choice("preprocess", self.preprocess, PREPROCESSING_MODES)
        if self.image_size is not None:
            check_positive("image_size", self.image_size, "a number of pixels", maximum=MAX_INPUT_SIZE)
        check_seed("seed", self.seed)

    def resolve(self) -> EmbedConfig:
        """The :class:`EmbedConfig` these options name; checks files and sizes (no TensorFlow)."""
        from featx.backbones.hub import is_hub_backbone, resolve_hub

        if is_hub_backbone(self.backbone):
            config = resolve_hub(
                self.backbone, weights=self.weights, image_size=self.image_size, resize=self.resize,
                pooling=self.pooling, preprocess=self.preprocess, seed=self.seed, random_id=self._random_id(),
            )
            # Pillow's JPEG draft moves a snapshot pipeline's pixels beyond a rounding step: off there
            draft = self.jpeg_draft and not is_pipeline(config.resize)
            return replace(config, jpeg_draft=draft, precision=self.precision)
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
            backbone=spec.name, weights=weights_id, input_size=size, resize=self.resize or "stretch",
            pooling=self._map_pooling(), preprocessing=spec.preprocessing, weights_path=weights_path, seed=self.seed,
            jpeg_draft=self.jpeg_draft, precision=self.precision,
        )

    def _weights_identity(self) -> tuple[str, str | None]:
        weights = self.weights or "imagenet"
        if weights == "imagenet":
            # Keras pins each ImageNet file by hash when it downloads it, so the name identifies it.
            return "imagenet", None
        if weights == "none":
            return self._random_id(), None
        path = Path(weights).expanduser()
        if not path.is_file():
            raise OptionError(
                f"{{param}} {weights!r} is neither 'imagenet', 'none' nor an existing weights file.", param="weights"
            )
        return f"{path.name}:sha256:{sha256_once(path)}", str(path.resolve())

    def _random_id(self) -> str:
        """The identity of random weights from ``seed``: they differ between backends (each has its own generator)."""
        backend = resolve_backend(self.backend)
        return f"none:seed={self.seed}" + ("" if backend == DEFAULT_BACKEND else f":backend={backend}")

    def _map_pooling(self) -> str:
        """The pooling of a feature map (Keras applications, .keras models): avg (default) or max."""
        if self.pooling not in (None, *KERAS_POOLINGS):
            raise OptionError(f"{{param}} {self.pooling} applies to transformer backbones (keras-hub); "
                              f"{self.backbone} pools its feature map by avg or max.", param="pooling")
        return self.pooling or "avg"

    def _custom_config(self, path: Path) -> EmbedConfig:
        if not path.is_file():
            raise MissingFileError(f"{{param}}: no such .keras model file {str(path)!r}.", param="backbone")
        if path.suffix != CUSTOM_MODEL_SUFFIX:
            raise OptionError(f"{{param}}: {str(path)!r} is not a .keras file; a custom backbone must be one.", param="backbone")
        if self.weights is not None:
            raise OptionError(
                "{param} does not apply to a custom .keras backbone: its weights are in the file.", param="weights"
            )
        if self.precision != "float32":
            raise OptionError(
                "{param} applies to registry backbones only: a custom .keras backbone keeps the dtypes saved "
                "in the file. Drop {param}.", param="precision",
            )
        size = self.image_size or _keras_file_input_size(path)
        return EmbedConfig(
            backbone=f"custom:{path.name}:sha256:{sha256_once(path)}", weights="embedded", input_size=size,
            resize=self.resize or _recorded_resize(path, size), pooling=self._map_pooling(),
            preprocessing=self.preprocess or "none",
            model_path=str(path.resolve()), jpeg_draft=self.jpeg_draft,
        )


def _names_a_file(backbone: str) -> bool:
    text = str(backbone)
    return text.endswith(CUSTOM_MODEL_SUFFIX) or os.path.sep in text


def _recorded_resize(path: Path, size: int) -> str:
    """The resize a fine-tuned backbone file records (its snapshot's pipeline, the pixels it was tuned
    on, scaled to ``size``), else stretch."""
    try:
        with zipfile.ZipFile(path) as archive:
            resize = json.loads(archive.read("featx.json")).get("config", {}).get("resize", "stretch")
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, AttributeError):
        return "stretch"
    if not isinstance(resize, str) or not is_pipeline(resize):
        return "stretch"
    pipeline = ImagePipeline.from_spec(resize)
    return pipeline.scaled(size, pipeline.fixed_size[0]).spec if pipeline.fixed_size else "stretch"


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
