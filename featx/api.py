"""The Python API: embed a dataset or a list of image files through the feature cache."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featx.cache.locate import cache_folder
from featx.cache.store import CacheIndex, read_vectors
from featx.config import EmbedConfig, resolve_config
from featx.datasets import Dataset, ImageRecord, scan_dataset
from featx.embedding import EmbedReport, embed_into_cache, resolve_cache_path
from featx.features import Features, SkippedImage, load_features
from featx.fileindex import default_workers
from featx.images import DEFAULT_MAX_PIXELS

DEFAULT_BACKBONE = "MobileNetV2"


def embed(
    data: str | os.PathLike,
    backbone: str = DEFAULT_BACKBONE,
    *,
    weights: str | None = None,
    image_size: int | None = None,
    resize: str = "stretch",
    pooling: str = "avg",
    preprocess: str | None = None,
    seed: int = 0,
    batch_size: int = 32,
    cache: str | os.PathLike | None = None,
    workers: int | None = None,
    progress=None,
) -> Features:
    """Embed every image of ``data`` once into its feature cache and return the features.

    ``data`` is a folder of class folders, of train/val/test folders, of plain images, or a CSV
    manifest. Reruns embed only new or changed files; :func:`embed_with_report` also says what
    the run did.
    """
    features, _ = embed_with_report(
        data, backbone, weights=weights, image_size=image_size, resize=resize, pooling=pooling,
        preprocess=preprocess, seed=seed, batch_size=batch_size, cache=cache, workers=workers,
        progress=progress,
    )
    return features


def embed_with_report(
    data: str | os.PathLike, backbone: str = DEFAULT_BACKBONE, **options
) -> tuple[Features, EmbedReport]:
    """Like :func:`embed`, also returning what the run did (embedded, reused, skipped)."""
    report = embed_to_cache(data, backbone, **options)
    return load_features(report.cache_path), report


def embed_to_cache(
    data: str | os.PathLike,
    backbone: str = DEFAULT_BACKBONE,
    *,
    cache: str | os.PathLike | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    progress=None,
    wait: bool = True,
    on_wait=None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    **options,
) -> EmbedReport:
    """Bring the feature cache of ``data`` up to date without loading the vectors into memory.

    ``options`` are the backbone configuration: weights, image_size, resize, pooling, preprocess,
    seed (see :func:`featx.resolve_config`). ``wait=False`` fails at once when another run holds
    the cache; ``max_pixels`` skips larger images undecoded.
    """
    dataset = scan_dataset(data)
    config = resolve_config(backbone, **options)
    cache_path = resolve_cache_path(cache, dataset, config)
    return embed_into_cache(
        dataset, config, cache_path, batch_size=batch_size, workers=workers or default_workers(),
        progress=progress, wait=wait, on_wait=on_wait, max_pixels=max_pixels,
    )


@dataclass(frozen=True)
class PathEmbedding:
    """Vectors for a list of files: ``X`` rows for the files where ``ok`` is true."""

    X: np.ndarray
    ok: np.ndarray
    skipped: list[SkippedImage]


def embed_paths(
    paths: Sequence[str | os.PathLike],
    config: EmbedConfig,
    *,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int = 32,
    workers: int | None = None,
    progress=None,
) -> PathEmbedding:
    """Vectors for arbitrary image files, through a content-addressed cache for ``config``.

    Used by :class:`featx.Embedder` and ``predict``: a file already embedded under the same
    configuration (same bytes) is not computed again.
    """
    files = [Path(os.path.abspath(p)) for p in paths]
    dataset = Dataset(
        root=Path(os.path.abspath(os.sep)), source=Path(os.path.abspath(os.sep)), layout="files",
        classes=(), records=tuple(ImageRecord(str(p), -1, "") for p in files),
    )
    folder = cache_folder(cache_dir)
    cache_path = folder / f"files--{config.display_name}--{config.fingerprint}.h5"
    report = embed_into_cache(
        dataset, config, cache_path, batch_size=batch_size, workers=workers or default_workers(),
        progress=progress, prune=False,
    )
    index = CacheIndex.read(cache_path)
    row_of = {vid: row for row, vid in enumerate(index.vector_ids.tolist())}
    id_of = dict(zip(index.images.path, index.images.id.tolist()))
    rows = np.asarray([row_of.get(id_of.get(str(p)), -1) for p in files], dtype=np.int64)
    ok = rows >= 0
    return PathEmbedding(X=read_vectors(cache_path, rows[ok]), ok=ok, skipped=report.skipped)


__all__ = ["embed", "embed_with_report", "embed_to_cache", "embed_paths", "load_features", "PathEmbedding", "DEFAULT_BACKBONE"]
