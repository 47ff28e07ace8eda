"""The Python API for embedding: a dataset (:func:`embed`) or loose image files (:func:`embed_files`)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from featx.augment import DEFAULT_AUGMENT, ViewRecipe
from featx.backbones import DEFAULT_BACKBONE
from featx.cache.locate import cache_path_for
from featx.cache.store import CacheIndex, read_vectors
from featx.config import EmbedConfig
from featx.datasets import loose_files
from featx.embedding import ProgressCallback, embed_into_cache, update_cache
from featx.features import Features, SkippedImage, load_features
from featx.images import DEFAULT_MAX_PIXELS
from featx.options import EmbedOptions, RunOptions


def embed(
    data: str | os.PathLike,
    backbone: str = DEFAULT_BACKBONE,
    *,
    weights: str | None = None,
    image_size: int | None = None,
    resize: str = "stretch",
    pooling: str | None = None,
    preprocess: str | None = None,
    seed: int = 0,
    jpeg_draft: bool = False,
    precision: str = "float32",
    batch_size: int | None = None,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    dtype: str | None = None,
    backend: str | None = None,
    engine: str = "local",
    address: str | None = None,
    gpus_per_worker: float = 0,
    cache: str | os.PathLike | None = None,
    wait: bool = True,
    progress: Callable[[int], ProgressCallback] | None = None,
    views: int = 0,
    augment: str = DEFAULT_AUGMENT,
) -> Features:
    """Embed every image of ``data`` once into its feature cache and return the features.

    ``data`` is a folder of class folders, of train/val/test folders, of plain images, or a CSV
    manifest ``path,label[,split]``. ``backbone`` is a name from :func:`featx.list_backbones` or
    a ``.keras`` model file, or a transformer through keras-hub (a curated name such as
    ``dinov2_small``, an ``hf://`` or ``kaggle://`` handle, a snapshot folder; ``pip install
    "featx[hub]"``); the other options are those of :class:`featx.options.EmbedOptions`.
    ``backend`` is the Keras backend (tensorflow, jax or torch; default ``$KERAS_BACKEND`` or
    tensorflow): vectors agree across backends within 1e-4. Reruns embed only new or changed files;
    ``features.report`` says what this run did (embedded, reused, skipped). ``cache`` is a cache
    folder or ``.h5`` file (default ``$FEATX_CACHE_DIR`` or ``.featx``); ``wait=False`` fails at
    once when another run holds it. ``dtype="float16"`` stores the vectors at half the size; the
    features returned are float32. ``engine="ray"`` decodes and embeds on a Ray cluster
    (``pip install "featx[ray]"``; ``address`` names it, default a local instance; ``workers``
    embedding workers of ``gpus_per_worker`` GPUs each) into the same cache; see
    :mod:`featx.ray_engine`. ``data`` may then also be an object-store URL (``s3://...``).
    ``views=K`` also caches K augmented views of each training image (``augment``: the
    augmentations, see :mod:`featx.augment`), for heads fitted with ``views=True``
    (:func:`featx.load_views` reads them); the features returned are the plain ones.
    """
    options = EmbedOptions(
        backbone=backbone, weights=weights, image_size=image_size, resize=resize, pooling=pooling,
        preprocess=preprocess, seed=seed, jpeg_draft=jpeg_draft, precision=precision, batch_size=batch_size,
        workers=workers, max_pixels=max_pixels, dtype=dtype, backend=backend, engine=engine, address=address,
        gpus_per_worker=gpus_per_worker,
    )
    report = update_cache(data, options, cache=cache, progress=progress, wait=wait,
                          views=ViewRecipe(views, augment))
    return replace(load_features(report.cache_path), report=report)


@dataclass(frozen=True)
class FileVectors:
    """Vectors for a list of files: ``X`` holds a row for each file where ``ok`` is true."""

    X: np.ndarray
    ok: np.ndarray
    skipped: list[SkippedImage]


def embed_files(
    paths: Sequence[str | os.PathLike],
    config: EmbedConfig,
    run: RunOptions = RunOptions(),
    *,
    cache: str | os.PathLike | None = None,
    progress: Callable[[int], ProgressCallback] | None = None,
) -> FileVectors:
    """Vectors for loose image files under ``config``, through that configuration's cache of files.

    What ``predict`` and :class:`featx.Embedder` use: a file already embedded under the same
    configuration (same bytes, any name) is not computed again.
    """
    files = loose_files(paths)
    cache_path = cache_path_for(cache, files.source, config.display_name, config.fingerprint, loose_files=True)
    report = embed_into_cache(files, config, cache_path, run, progress=progress)
    index = CacheIndex.read(cache_path)
    row_of = {vid: row for row, vid in enumerate(index.vector_ids.tolist())}
    id_of = dict(zip(index.images.path, index.images.id.tolist()))
    rows = np.asarray([row_of.get(id_of.get(r.path), -1) for r in files.records], dtype=np.int64)
    ok = rows >= 0
    return FileVectors(X=read_vectors(index, rows[ok]), ok=ok, skipped=report.skipped)
