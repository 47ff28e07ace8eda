"""The Python API for embedding: a dataset (:func:`embed`) or loose image files (:func:`embed_files`)."""

from __future__ import annotations

import os
from collections.abc import Callable

from featx.backbones.applications import DEFAULT_BACKBONE
from featx.data.augment import DEFAULT_AUGMENT, ViewRecipe
from featx.data.images import DEFAULT_MAX_PIXELS
from featx.engine.run import ProgressCallback, update_cache
from featx.engine.views import check_views_engine
from featx.features.vectors import Features, load_features
from featx.options import EmbedOptions


def embed(
    data: str | os.PathLike,
    backbone: str = DEFAULT_BACKBONE,
    *,
    weights: str | None = None,
    image_size: int | None = None,
    resize: str | None = None,
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
    :mod:`featx.engine.ray`. ``data`` may then also be an object-store URL (``s3://...``).
    ``views=K`` also caches K augmented views of each training image (``augment``: the
    augmentations, see :mod:`featx.data.augment`), for heads fitted with ``views=True``
    (:func:`featx.load_views` reads them); the features returned are the plain ones.
    """
    recipe = ViewRecipe(views, augment)
    check_views_engine(recipe, engine)  # before the options, which refuse engine="ray" without Ray
    options = EmbedOptions(
        backbone=backbone, weights=weights, image_size=image_size, resize=resize, pooling=pooling,
        preprocess=preprocess, seed=seed, jpeg_draft=jpeg_draft, precision=precision, batch_size=batch_size,
        workers=workers, max_pixels=max_pixels, dtype=dtype, backend=backend, engine=engine, address=address,
        gpus_per_worker=gpus_per_worker,
    )
    report = update_cache(data, options, cache=cache, progress=progress, wait=wait,
                          views=recipe)
    return load_features(report.cache_path).replaced(report=report)


