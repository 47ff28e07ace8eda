"""Who decodes and embeds a run's planned images: the executor seam and this machine's executor."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import numpy as np

from featx.backend import resolve_backend
from featx.config import EmbedConfig
from featx.engine.decode import decode_batches, use_processes
from featx.engine.pixels import DecodeSpec
from featx.engine.workers import start_workers
from featx.errors import ImageDecodeError
from featx.options import RunOptions

Batch = tuple[list[bytes], np.ndarray, list[tuple[bytes, ImageDecodeError]]]


class Executor(Protocol):
    """Who decodes and embeds the planned images; the plan and the commits stay in :func:`_update`.

    ``batches(todo)`` yields (content ids, their vectors, (id, decode error) of the images that
    failed), batch by batch, each checked against its planned sha256 (else a
    :class:`NotAsPlannedError`). ``backend`` is the Keras backend the vectors come from;
    ``feature_dim`` their width (known at the latest once the batches are done); ``live_workers``
    how many workers are embedding now, or None where that means nothing (one process).
    """

    backend: str
    feature_dim: int
    live_workers: int | None

    def batches(self, todo: dict[bytes, Path | str]) -> Iterator[Batch]: ...


class LocalExecutor:
    """Decoding workers of this machine (featx.engine.decode: processes beside a GPU, else threads) feed
    one :class:`~featx.engine.extractor.FeatureExtractor`. ``planned`` images decide processes or threads."""

    live_workers = None

    def __init__(self, config: EmbedConfig, run: RunOptions, extractor=None, planned: int = 0):
        if extractor is None:
            from featx.engine.extractor import FeatureExtractor, on_accelerator  # imports TensorFlow: only when needed

            # processes only beside a GPU; asking Keras where it computes imports it: only when it matters
            if use_processes(planned, backbone_on_cpu=False) and use_processes(
                    planned, backbone_on_cpu=not on_accelerator(resolve_backend(run.backend))):
                start_workers(run.decode_workers)  # they start while the backbone is built
            extractor = FeatureExtractor(config, batch_size=run.batch_size, backend=run.backend)
        self.extractor, self.config, self.run = extractor, config, run
        self.backend, self.feature_dim = extractor.backend, extractor.feature_dim

    def batches(self, todo: dict[bytes, Path | str], expand: Expand | None = None, per_image: int = 1) -> Iterator[Batch]:
        """(content ids, their vectors, (id, error) of images that failed to decode), batch by batch.

        With ``expand`` (``(ids, pixels) -> (keys, pixels)``, at most ``per_image`` rows per image:
        featx.engine.views) each decoded batch becomes the rows it returns, and those are embedded instead.
        """
        extractor, config, run = self.extractor, self.config, self.run
        spec = DecodeSpec(config.input_size, config.resize, run.max_pixels, config.jpeg_draft)
        processes = use_processes(len(todo), backbone_on_cpu=not getattr(extractor, "on_accelerator", False))
        batches = decode_batches(list(todo.items()), spec, run.decode_workers, max(1, extractor.batch_size // per_image),
                                 sha256=lambda content_id: content_id, processes=processes)
        pairs = (((ids, failures), pixels) for ids, pixels, failures in batches)
        if expand is not None:
            pairs = _expanded(pairs, expand, extractor.batch_size)
        # A FeatureExtractor's stream copies the next batch to the GPU while this one computes; any
        # callable that maps a batch to vectors will also do (tests pass stand-ins).
        stream = getattr(extractor, "stream", None) or (
            lambda pairs: ((key, _vectors(extractor, x)) for key, x in pairs))
        for (ids, failures), vectors in stream(pairs):
            yield ids, vectors, failures


class SharedLocalExecutor:
    """A :class:`LocalExecutor` built on first use and kept, so that the runs of one call (the plain
    vectors, then the views) build the backbone once, and a run with nothing new builds none."""

    live_workers = None

    def __init__(self, config: EmbedConfig, run: RunOptions):
        self.config, self.run, self._executor = config, run, None

    def _built(self, planned: int = 0) -> LocalExecutor:
        if self._executor is None:
            self._executor = LocalExecutor(self.config, self.run, planned=planned)
        return self._executor

    @property
    def backend(self) -> str:
        return self._built().backend

    @property
    def feature_dim(self) -> int:
        return self._built().feature_dim

    def batches(self, todo: dict[bytes, Path | str], expand: Expand | None = None, per_image: int = 1) -> Iterator[Batch]:
        return self._built(len(todo)).batches(todo, expand, per_image)


Expand = Callable[[list[bytes], np.ndarray], tuple[list[bytes], np.ndarray]]


def _expanded(pairs, expand: Expand, batch_size: int):
    """Each decoded batch replaced by the rows ``expand`` makes of it, at most ``batch_size`` a call
    (an image's decode failure travels with the first of them)."""
    for (ids, failures), pixels in pairs:
        keys, rows = expand(ids, pixels)
        for start in range(0, max(len(keys), 1), batch_size):
            yield (keys[start : start + batch_size], failures if start == 0 else []), rows[start : start + batch_size]


def _vectors(extractor, pixels: np.ndarray) -> np.ndarray:
    return extractor(pixels) if len(pixels) else np.zeros((0, extractor.feature_dim), np.float32)
