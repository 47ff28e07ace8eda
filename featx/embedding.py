"""Embedding a dataset into its feature cache: find what is new, embed only that, commit atomically.

Committed files are never written in place. Finished batches become shards (see
``featx.cache.shards``); at the end the run's vectors become one new segment and the small index is
replaced (``featx.cache.append``). A run that is killed loses at most the batch in flight, and the
next run picks up the shards it left.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Protocol

import numpy as np

from featx._faults import crash_point
from featx._versions import recorded_versions
from featx.augment import ViewRecipe
from featx.backbones import get_backbone
from featx.backend import resolve_backend
from featx.cache.locate import cache_path_for
from featx.cache.lock import cache_lock
from featx.cache.append import SegmentPlan, commit, plan_segments
from featx.cache.shards import list_shards, read_shards, shard_backends, shard_width, write_shard
from featx.cache.store import CacheIndex, remove_stale_temporaries
from featx.cache.tables import ID_DTYPE, ImageTable, SkipTable, id_column, str_column
from featx.config import EmbedConfig
from featx.datasets import LOOSE_FILES, Dataset, scan_dataset
from featx.errors import CacheError, CacheWriteError, FeatxError, ImageDecodeError, check_path
from featx.extractor import CPU_BATCH_SIZE  # (no Keras import)
from featx.features import SkippedImage
from featx.fileindex import index_files
from featx.objectstore import ObjectFiles, is_url
from featx.options import EmbedOptions, RunOptions, check_batch_memory
from featx.streaming import DecodeSpec, NotAsPlannedError, decode_batches, start_workers, use_processes
from featx.views import ViewsReport, check_views_engine, update_views

ProgressCallback = Callable[[int], None]


@dataclass
class EmbedReport:
    """What one embed run did, for the summary line and ``--json``."""

    cache_path: Path
    images: int = 0
    embedded: int = 0
    reused: int = 0
    skipped: list[SkippedImage] = field(default_factory=list)
    feature_dim: int = 0
    seconds: float = 0.0
    warnings: tuple[str, ...] = ()  # what the dataset scan left out or merged (Dataset.warnings)
    views: "ViewsReport | None" = None  # the augmented views' run (featx.views), when views were asked for

    def to_dict(self) -> dict[str, object]:
        return {
            **({"views": self.views.to_dict()} if self.views is not None else {}),
            "cache": str(self.cache_path),
            "images": self.images,
            "embedded": self.embedded,
            "reused": self.reused,
            "skipped": [s.to_dict() for s in self.skipped],
            "feature_dim": self.feature_dim,
            "seconds": round(self.seconds, 3),
            "warnings": list(self.warnings),
        }


def update_cache(
    data: str | os.PathLike,
    options: EmbedOptions,
    *,
    cache: str | os.PathLike | None = None,
    progress: Callable[[int], ProgressCallback] | None = None,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
    views: ViewRecipe = ViewRecipe(),
) -> EmbedReport:
    """Bring the feature cache of the dataset at ``data`` up to date, without loading its vectors.

    What ``featx embed`` runs, and what :func:`featx.embed` runs before reading the cache back.
    ``cache`` is a cache folder or ``.h5`` file (default: :func:`featx.cache.locate.cache_folder`).
    ``views`` (``views.count`` above 0) then brings the augmented views of the training images up to
    date too (:mod:`featx.views`); ``report.views`` says what that did.
    """
    check_path("data", data)
    check_path("cache", cache, optional=True)
    check_views_engine(views, options)
    dataset = scan_dataset(data)
    config = options.resolve()
    path = cache_path_for(cache, dataset.source, config.display_name, config.fingerprint)
    run = options.run_options()
    executor = SharedLocalExecutor(config, run) if views.count else None  # one backbone for both runs
    report = embed_into_cache(dataset, config, path, run, progress=progress, executor=executor, wait=wait,
                              on_wait=on_wait)
    if views.count:
        report.views = update_views(path, dataset.root, config, views, run, progress=progress, executor=executor,
                                    wait=wait, on_wait=on_wait)
    return report


def embed_into_cache(
    dataset: Dataset,
    config: EmbedConfig,
    cache_path: Path,
    run: RunOptions = RunOptions(),
    *,
    progress: Callable[[int], ProgressCallback] | None = None,
    extractor=None,
    executor: Executor | None = None,
    wait: bool = True,
    on_wait: Callable[[str], None] | None = None,
) -> EmbedReport:
    """Bring ``cache_path`` up to date with ``dataset`` under ``config`` and return what was done.

    A dataset's cache drops the vectors of files no longer in the dataset; a cache of loose files
    (:func:`featx.datasets.loose_files`) keeps every vector it ever computed. An ``extractor``
    already built for ``config`` may be passed in to reuse it, or an ``executor`` (by default the one
    ``run.engine`` names: :class:`LocalExecutor`, or :class:`featx.ray_engine.RayExecutor`). One run at
    a time holds the cache's lock: with ``wait`` a second run waits (``on_wait`` is told), else it
    fails at once.

    ``progress(total)`` is called once with the number of images to embed and returns a callback
    that receives the number of images finished after each batch.
    """
    # refused before any pixel is allocated (with no batch size given: the CPU default, the least a run uses)
    check_batch_memory(run.batch_size or CPU_BATCH_SIZE, config.input_size)
    started = time.perf_counter()
    with cache_lock(cache_path, wait=wait, on_wait=on_wait, read_only_ok=True) as writable:
        if writable:
            remove_stale_temporaries(cache_path)
        report = _update(dataset, config, cache_path, run, progress, extractor, executor, writable)
    report.seconds = time.perf_counter() - started
    return report


def _update(dataset: Dataset, config: EmbedConfig, cache_path: Path, run: RunOptions, progress, extractor,
            executor, writable: bool = True) -> EmbedReport:
    fingerprint = config.fingerprint
    index = CacheIndex.read(cache_path) if cache_path.exists() else None
    if index is not None and index.fingerprint != fingerprint:
        raise CacheError(
            f"{cache_path} holds features of another backbone configuration "
            f"({index.config.get('backbone')}, fingerprint {index.fingerprint}); "
            "choose another cache file ({param}) or delete this one.", param="cache",
        )
    _check_same_dataset(index, cache_path, dataset)
    dtype = _dtype(index, run.dtype, cache_path)
    images, unreadable = index_files(dataset.root, dataset.records, index.images if index else None,
                                     run.decode_workers, files=_object_files(dataset, run))
    feature_dim = _known_width(index, config, cache_path)
    plan = plan_segments(index, feature_dim)
    have, failed_ids = committed_work(index, plan, cache_path, fingerprint, feature_dim)
    reused_ids = have.copy()
    not_as_planned: dict[bytes, str] = {}  # read but not decoded this run: says nothing of the content

    todo: dict[bytes, Path] = {}
    for path, content_id in zip(images.path, images.id.tolist()):
        if content_id not in have and content_id not in failed_ids and content_id not in todo:
            todo[content_id] = dataset.root / path
    crash_point("planned")

    embedded: set[bytes] = set()
    if todo and not writable:
        raise unwritable(cache_path, f"{len(todo)} image(s) need embedding")
    if todo:
        advance = progress(len(todo)) if progress else None
        executor = executor or executor_for(config, run, extractor, planned=len(todo))
        tell = _with_workers(advance, executor)
        with contextlib.closing(executor.batches(todo)) as batches:
            for ids, vectors, failures in batches:
                undecodable = [(i, str(e)) for i, e in failures if not isinstance(e, NotAsPlannedError)]
                write_shard(cache_path, fingerprint, id_column(ids), vectors, id_column(i for i, _ in undecodable),
                            [r for _, r in undecodable], backend=executor.backend)
                crash_point("shard-committed")
                have.update(ids)
                embedded.update(ids)
                failed_ids.update(undecodable)
                not_as_planned.update((i, str(e)) for i, e in failures if isinstance(e, NotAsPlannedError))
                if tell:
                    tell(len(ids) + len(failures))
        feature_dim = executor.feature_dim

    warnings = dataset.warnings
    if index is not None and index.version < 2:
        warnings += (f"upgraded {cache_path} from cache schema v{index.version} (one file, rewritten on "
                     "every run) to v2 (appended segments)",)
    report = EmbedReport(cache_path=cache_path, images=len(images) + len(unreadable), feature_dim=feature_dim,
                         warnings=warnings)
    skipped_rows = [(p, b"", r) for p, r in unreadable]
    for row, (path, content_id) in enumerate(zip(images.path, images.id.tolist())):
        if content_id in reused_ids:
            report.reused += 1
        elif content_id in have:
            report.embedded += 1
        elif content_id in failed_ids:  # these bytes do not decode: retried only once they change
            skipped_rows.append((path, content_id, failed_ids[content_id]))
        else:  # not tied to the content (b""), and hashed again next run whatever its size and time
            skipped_rows.append((path, b"", not_as_planned.get(content_id, "not embedded")))
            images.mtime_ns[row] = -1
    report.skipped = [SkippedImage(str(dataset.root / p), r) for p, _, r in skipped_rows]
    if report.embedded + report.reused == 0:
        first = report.skipped[0] if report.skipped else None
        detail = f" (e.g. {first.path}: {first.reason})" if first else ""
        where = "given" if dataset.is_loose_files else f"in {dataset.source}"
        raise FeatxError(f"None of the {report.images} images {where} could be embedded{detail}.")

    skipped = SkipTable(
        path=str_column(p for p, _, _ in skipped_rows),
        id=np.asarray([i for _, i, _ in skipped_rows], dtype=ID_DTYPE),
        reason=str_column(r for _, _, r in skipped_rows),
    )
    if changed_index(index, plan, cache_path, images, skipped, list(dataset.classes), str(dataset.root)):
        if not writable:
            raise unwritable(cache_path, "the dataset changed since the cache was written")
        attrs = {**_attrs(dataset, config, feature_dim), "backends": json.dumps(_backends(index, cache_path, config))}
        commit(cache_path, index, plan, attrs=attrs, classes=list(dataset.classes),
               images=images, skipped=skipped, feature_dim=feature_dim, dtype=dtype, embedded=embedded)
    return report


def unwritable(cache_path: Path, why: str) -> CacheWriteError:
    """The error of a run that must write where it cannot (a read-only mount or folder)."""
    return CacheWriteError(
        f"{cache_path.parent} is not writable (read-only, or no permission) and {why}; nothing was written. "
        "Choose a writable cache folder ({param}) or fix its permissions.", param="cache",
    )


def _object_files(dataset: Dataset, run: RunOptions):
    """How the files of a URL dataset are stated and hashed (None: local files): the Ray engine hashes
    them on its workers, so that their bytes never come to this process."""
    if not is_url(dataset.root):
        return None
    hash_many = None
    if run.engine == "ray":
        from featx.ray_engine import hash_on_ray

        hash_many = lambda urls: hash_on_ray(urls, run.address)  # noqa: E731
    return ObjectFiles(dataset.root, hash_many, run.decode_workers)


def _backends(index: CacheIndex | None, cache_path: Path, config: EmbedConfig) -> list[str]:
    """The Keras backends whose vectors the cache holds: the committed ones and this run's shards'.
    They agree within 1e-4, so they may share one cache; ``featx cache info`` lists them."""
    committed = set(json.loads(str(index.attrs.get("backends", "[]")))) if index is not None else set()
    return sorted(committed | shard_backends(cache_path, config.fingerprint))


def _check_same_dataset(index: CacheIndex | None, cache_path: Path, dataset: Dataset) -> None:
    """Refuse to turn one dataset's cache into another's (which would drop the first one's vectors);
    caches of loose files are shared by every set of loose files, by design."""
    if index is None or (dataset.is_loose_files and index.attrs.get("layout") == LOOSE_FILES):
        return
    source = str(index.attrs.get("dataset", ""))
    if source != str(dataset.source) or (index.attrs.get("layout") == LOOSE_FILES) != dataset.is_loose_files:
        raise CacheError(
            f"{cache_path} holds the features of another source ({source}); "
            "choose another cache file ({param}) or delete this one.", param="cache",
        )


def _known_width(index: CacheIndex | None, config: EmbedConfig, cache_path: Path) -> int:
    """The vector width, known without building the backbone: from the backbone table, the
    committed cache, or the shards a killed first run left (0 when only the backbone can tell)."""
    if not (config.is_custom or config.is_hub):
        return get_backbone(config.backbone).feature_dim
    if index is not None and int(index.attrs.get("feature_dim", 0)) > 0:
        return int(index.attrs["feature_dim"])
    return shard_width(cache_path, config.fingerprint)


def _dtype(index: CacheIndex | None, asked: str | None, cache_path: Path) -> str:
    """How this cache stores vectors: its own dtype; ``asked`` (float32 if None) for a new cache.
    Asking another dtype of an existing cache is refused: a cache never mixes them."""
    if index is None:
        return asked or "float32"
    if asked is not None and asked != index.dtype:
        raise CacheError(
            f"{cache_path} stores its vectors as {index.dtype} and {{param}} asks for {asked}: a cache never mixes "
            f"them. Omit {{param}} (or give {index.dtype}), or use another cache file.",
            param="dtype",
        )
    return index.dtype


def committed_work(
    index: CacheIndex | None, plan: SegmentPlan, cache_path: Path, fingerprint: str, feature_dim: int
) -> tuple[set[bytes], dict[bytes, str]]:
    """Content ids that already have a usable vector, and those known not to decode (with reasons),
    from the committed segments (:func:`plan_segments`: no vector is read while their stat is
    unchanged) and from shards left by earlier (possibly killed) runs."""
    have = set(plan.have)
    failed: dict[bytes, str] = {}
    if index is not None:
        failed.update((i, r) for i, r in zip(index.skipped.id.tolist(), index.skipped.reason) if i)
    width = feature_dim or None
    for _, ids, _, skipped_ids, reasons in read_shards(cache_path, fingerprint, features=False, width=width):
        have.update(ids.tolist())
        failed.update(zip(skipped_ids.tolist(), reasons))
    return have, failed


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

    def batches(self, todo: dict[bytes, Path]) -> Iterator[Batch]: ...


class LocalExecutor:
    """Decoding workers of this machine (featx.streaming: processes beside a GPU, else threads) feed
    one :class:`~featx.extractor.FeatureExtractor`. ``planned`` images decide processes or threads."""

    live_workers = None

    def __init__(self, config: EmbedConfig, run: RunOptions, extractor=None, planned: int = 0):
        if extractor is None:
            from featx.extractor import FeatureExtractor, on_accelerator  # imports TensorFlow: only when needed

            # processes only beside a GPU; asking Keras where it computes imports it: only when it matters
            if use_processes(planned, backbone_on_cpu=False) and use_processes(
                    planned, backbone_on_cpu=not on_accelerator(resolve_backend(run.backend))):
                start_workers(run.decode_workers)  # they start while the backbone is built
            extractor = FeatureExtractor(config, batch_size=run.batch_size, backend=run.backend)
        self.extractor, self.config, self.run = extractor, config, run
        self.backend, self.feature_dim = extractor.backend, extractor.feature_dim

    def batches(self, todo: dict[bytes, Path], expand: Expand | None = None, per_image: int = 1) -> Iterator[Batch]:
        """(content ids, their vectors, (id, error) of images that failed to decode), batch by batch.

        With ``expand`` (``(ids, pixels) -> (keys, pixels)``, at most ``per_image`` rows per image:
        featx.views) each decoded batch becomes the rows it returns, and those are embedded instead.
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

    def batches(self, todo: dict[bytes, Path], expand: Expand | None = None, per_image: int = 1) -> Iterator[Batch]:
        return self._built(len(todo)).batches(todo, expand, per_image)


Expand = Callable[[list[bytes], np.ndarray], tuple[list[bytes], np.ndarray]]


def _expanded(pairs, expand: Expand, batch_size: int):
    """Each decoded batch replaced by the rows ``expand`` makes of it, at most ``batch_size`` a call
    (an image's decode failure travels with the first of them)."""
    for (ids, failures), pixels in pairs:
        keys, rows = expand(ids, pixels)
        for start in range(0, max(len(keys), 1), batch_size):
            yield (keys[start : start + batch_size], failures if start == 0 else []), rows[start : start + batch_size]


def executor_for(config: EmbedConfig, run: RunOptions, extractor=None, planned: int = 0) -> Executor:
    """The executor ``run.engine`` names (an ``extractor`` already built means the local one)."""
    if run.engine == "ray" and extractor is None:
        from featx.ray_engine import RayExecutor  # imports Ray: only for this engine

        return RayExecutor(config, run)
    return LocalExecutor(config, run, extractor, planned)


def _with_workers(advance: ProgressCallback | None, executor: Executor) -> ProgressCallback | None:
    """``advance``, told the number of live workers too when it takes a ``workers`` keyword."""
    if advance is None or executor.live_workers is None:
        return advance
    try:
        takes = "workers" in inspect.signature(advance).parameters
    except (TypeError, ValueError):
        takes = False
    return (lambda count: advance(count, workers=executor.live_workers)) if takes else advance


def _vectors(extractor, pixels: np.ndarray) -> np.ndarray:
    return extractor(pixels) if len(pixels) else np.zeros((0, extractor.feature_dim), np.float32)


def changed_index(index: CacheIndex | None, plan: SegmentPlan, cache_path: Path, images: ImageTable,
                  skipped: SkipTable, classes: list[str], root: str) -> bool:
    """Whether a run must commit a new index: new vectors, or tables, classes or root not as committed."""
    if index is None or index.version < 2 or plan.changes_index or list_shards(cache_path):
        return True
    if list(index.classes) != list(classes) or str(index.attrs.get("root")) != root:
        return True
    for old, new in ((index.images, images), (index.skipped, skipped)):
        if len(old) != len(new):
            return True
        for name in new.__dataclass_fields__:
            if not np.array_equal(getattr(old, name), getattr(new, name)):
                return True
    return False


def _attrs(dataset: Dataset, config: EmbedConfig, feature_dim: int) -> dict[str, object]:
    identity = config.identity()
    return {
        **{k: v for k, v in identity.items()},
        "fingerprint": config.fingerprint,
        "config": json.dumps(identity, sort_keys=True),
        "sources": json.dumps(config.sources(), sort_keys=True),
        "dataset": str(dataset.source),
        "root": str(dataset.root),
        "layout": dataset.layout,
        "feature_dim": feature_dim,
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **recorded_versions(),
    }
