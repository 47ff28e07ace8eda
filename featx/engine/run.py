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
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from featx._faults import crash_point
from featx._gc import release_free_memory
from featx._versions import recorded_versions
from featx.backbones.build import known_feature_dim
from featx.cache.idset import IdSet
from featx.cache.locate import cache_path_for
from featx.cache.shards import shard_backends, shard_width, write_shard
from featx.cache.store import CacheIndex
from featx.cache.tables import ID_DTYPE, ImageTable, SkipTable, id_column, str_column
from featx.checks import check_path
from featx.config import EmbedConfig
from featx.data.augment import ViewRecipe
from featx.data.layouts import scan_dataset
from featx.data.objectstore import ObjectFiles, is_url
from featx.data.records import LOOSE_FILES, Dataset
from featx.engine.commit import check_keepable, locked_run, plan_run
from featx.engine.executor import Executor, LocalExecutor, SharedLocalExecutor
from featx.engine.extractor import CPU_BATCH_SIZE  # (no Keras import)
from featx.engine.fileindex import index_files
from featx.engine.pixels import NotAsPlannedError
from featx.engine.views import check_views_engine, update_views
from featx.errors import CacheError, FeatxError
from featx.features.reports import EmbedReport, SkippedImage, ViewsReport
from featx.options import EmbedOptions, RunOptions, check_batch_memory

ProgressCallback = Callable[[int], None]


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
    date too (:mod:`featx.engine.views`); ``report.views`` says what that did.
    """
    check_path("data", data)
    check_path("cache", cache, optional=True)
    check_views_engine(views, options.engine)
    dataset = scan_dataset(data)
    config = options.resolve()
    path = cache_path_for(cache, dataset.source, config.display_name, config.fingerprint)
    run = options.run_options()
    executor = SharedLocalExecutor(config, run) if views.count else None  # one backbone for both runs
    views_run = (lambda: update_views(path, dataset.root, config, views, run, progress=progress, executor=executor,
                                      wait=wait, on_wait=on_wait)) if views.count else None
    return embed_into_cache(dataset, config, path, run, progress=progress, executor=executor, wait=wait,
                            on_wait=on_wait, views_run=views_run)


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
    views_run: Callable[[], ViewsReport] | None = None,
) -> EmbedReport:
    """Bring ``cache_path`` up to date with ``dataset`` under ``config`` and return what was done.

    A dataset's cache drops the vectors of files no longer in the dataset; a cache of loose files
    (:func:`featx.data.layouts.loose_files`) keeps every vector it ever computed. An ``extractor``
    already built for ``config`` may be passed in to reuse it, or an ``executor`` (by default the one
    ``run.engine`` names: :class:`LocalExecutor`, or :class:`featx.engine.ray.RayExecutor`). One run at
    a time holds the cache's lock: with ``wait`` a second run waits (``on_wait`` is told), else it
    fails at once.

    ``progress(total)`` is called once with the number of images to embed and returns a callback
    that receives the number of images finished after each batch. ``views_run`` (the views of the
    training images) runs while the lock is still held, so that no ``cache rm`` or ``cache compact``
    comes between the two commits; ``report.views`` is what it returns.
    """
    # refused before any pixel is allocated (with no batch size given: the CPU default, the least a run uses)
    check_batch_memory(run.batch_size or CPU_BATCH_SIZE, config.input_size)
    started = time.perf_counter()
    with locked_run(cache_path, wait=wait, on_wait=on_wait) as writable:
        report = _update(dataset, config, cache_path, run, progress, extractor, executor, writable)
        report.seconds = time.perf_counter() - started
        if views_run is not None:
            report.views = views_run()
    return report


def _update(dataset: Dataset, config: EmbedConfig, cache_path: Path, run: RunOptions, progress, extractor,
            executor, writable: bool = True) -> EmbedReport:
    fingerprint = config.fingerprint
    # lean: the image table is read a block at a time by index_files, the vectors' ids as hashes (a
    # loose-files cache, which keeps earlier files' rows, reads its table whole)
    index = CacheIndex.read(cache_path, hold=False, unreadable_ok=True, hashed_ids=True,
                            images=dataset.is_loose_files) if cache_path.exists() else None
    if index is not None and index.fingerprint != fingerprint:
        raise CacheError(
            f"{cache_path} holds features of another backbone configuration "
            f"({index.config.get('backbone')}, fingerprint {index.fingerprint}); "
            "choose another cache file ({param}) or delete this one.", param="cache",
        )
    _check_same_dataset(index, cache_path, dataset)
    dtype = _dtype(index, run.dtype, cache_path)
    images, unreadable, matched = index_files(dataset.root, dataset.records, index, run.decode_workers,
                                              files=_object_files(dataset, run))
    feature_dim = _known_width(index, config, cache_path)
    plan = plan_run(cache_path, index, fingerprint, feature_dim, writable)
    have, failed_ids = plan.have, plan.failed
    not_as_planned: dict[bytes, str] = {}  # read but not decoded this run: says nothing of the content

    todo: dict[bytes, str] = {}  # paths as str: a Path object costs ~300 bytes an image
    lacking = ~have.contains(images.id)  # asked once for the whole column: a rerun loops over none
    for path, content_id in zip(images.path[lacking], images.id[lacking].tolist()):
        if content_id not in failed_ids and content_id not in todo:
            todo[content_id] = str(dataset.root / path)
    crash_point("planned")

    embedded = plan.embedded
    if todo:
        plan.require_writable(f"{len(todo)} image(s) need embedding")
        release_free_memory()  # the plan's temporaries, before the backbone's runtime takes its own
        advance = progress(len(todo)) if progress else None
        executor = executor or executor_for(config, run, extractor, planned=len(todo))
        tell = _with_workers(advance, executor)
        with contextlib.closing(executor.batches(todo)) as batches:
            for ids, vectors, failures in batches:
                check_keepable(vectors, dtype=dtype, precision=config.precision)
                undecodable = [(i, str(e)) for i, e in failures if not isinstance(e, NotAsPlannedError)]
                write_shard(cache_path, fingerprint, id_column(ids), vectors, id_column(i for i, _ in undecodable),
                            [r for _, r in undecodable], backend=executor.backend)
                crash_point("shard-committed")
                plan.add(ids)
                failed_ids.update(undecodable)
                not_as_planned.update((i, str(e)) for i, e in failures if isinstance(e, NotAsPlannedError))
                if tell:
                    tell(len(ids) + len(failures))
        feature_dim = executor.feature_dim
        del executor, batches, tell  # the backbone built here goes before the commit (a caller's stays theirs),
        todo.clear()  # and the work list
        release_free_memory()

    warnings = dataset.warnings
    if index is not None and index.version < 2:
        warnings += (f"upgraded {cache_path} from cache schema v{index.version} (one file, rewritten on "
                     "every run) to v3 (appended segments)",)
    report = EmbedReport(cache_path=cache_path, images=len(images) + len(unreadable), feature_dim=feature_dim,
                         warnings=warnings)
    skipped_rows = [(p, b"", r) for p, r in unreadable]
    new = IdSet(embedded).contains(images.id)
    vector = ~lacking | new
    report.embedded, report.reused = int((vector & new).sum()), int((vector & ~new).sum())
    for row in np.flatnonzero(~vector).tolist():
        path, content_id = images.path[row], images.id[row]
        if content_id in failed_ids:  # these bytes do not decode: retried only once they change
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
    plan.commit_if_changed(
        images=_with_earlier_files(index, images, plan.have) if dataset.is_loose_files else images, skipped=skipped,
        matched=None if dataset.is_loose_files else matched, classes=list(dataset.classes), root=str(dataset.root),
        attrs=lambda: {**_attrs(dataset, config, feature_dim), "backends": json.dumps(_backends(index, cache_path, config))},
        feature_dim=feature_dim, dtype=dtype, embedded=embedded, why="the dataset changed since the cache was written")
    return report


def _with_earlier_files(index: CacheIndex | None, images: ImageTable, have: IdSet) -> ImageTable:
    """A loose-files cache is shared by every ``predict`` and Embedder call of its configuration: the
    files of earlier runs that this run did not name stay listed (while their vectors are usable),
    so that neither this run nor a ``cache compact`` after it drops their vectors."""
    if index is None:
        return images
    named = set(images.path.tolist())
    unnamed = np.fromiter((path not in named for path in index.images.path.tolist()), bool, len(index.images))
    earlier = np.flatnonzero(unnamed & have.contains(index.images.id))
    if not len(earlier):
        return images
    listed = ImageTable.concat([index.images.take(earlier), images])
    return listed.take(np.argsort(listed.path.astype(str), kind="stable"))  # one order, whichever call came last


def _object_files(dataset: Dataset, run: RunOptions):
    """How the files of a URL dataset are stated and hashed (None: local files): the Ray engine hashes
    them on its workers, so that their bytes never come to this process."""
    if not is_url(dataset.root):
        return None
    hash_many = None
    if run.engine == "ray":
        from featx.engine.ray import hash_on_ray

        hash_many = lambda urls: hash_on_ray(urls, run.address)
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
    known = known_feature_dim(config)
    if known is not None:
        return known
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


def executor_for(config: EmbedConfig, run: RunOptions, extractor=None, planned: int = 0) -> Executor:
    """The executor ``run.engine`` names (an ``extractor`` already built means the local one)."""
    if run.engine == "ray" and extractor is None:
        from featx.engine.ray import RayExecutor  # imports Ray: only for this engine

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
