"""Vectors for loose image files, through their configuration's cache of files (predict, Embedder)."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from featx.cache.locate import cache_path_for
from featx.cache.store import CacheIndex, read_vectors
from featx.config import EmbedConfig
from featx.data.layouts import loose_files
from featx.engine.run import ProgressCallback, embed_into_cache
from featx.features.reports import SkippedImage
from featx.options import RunOptions


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
