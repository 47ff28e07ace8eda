"""Augmented views of a dataset's training images, cached beside its plain vectors.

``featx embed --views K`` embeds, after the plain vectors, K views (:mod:`featx.data.augment`) of every
training image: the labelled images of the train split, or every labelled image when the data has
no split (a head draws its hold-out at fit time and uses only the views of the images it trains on).
They live in ``<cache>.h5.views/<recipe>--<fingerprint>.h5``, an ordinary featx cache whose rows are
views (id: :func:`featx.data.augment.view_id`; path, label and split: their image's), committed like any
cache (shards, then one new segment per run: a killed run loses one batch), so a rerun embeds only the
views of new images, or of new view numbers. Its fingerprint holds the plain cache's and the recipe;
the plain cache and its fingerprint are not touched. Views never leave their image: a head trains on
the views of its training images only, and is evaluated on plain vectors only.
"""

from __future__ import annotations

import functools
import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from featx._versions import recorded_versions
from featx.cache.idset import IdSet
from featx.cache.locate import views_cache_path
from featx.cache.schema import VIEWS_KIND
from featx.cache.shards import write_shard
from featx.cache.store import CacheIndex
from featx.cache.tables import ImageTable, SkipTable, id_column
from featx.config import EmbedConfig
from featx.data.augment import ViewRecipe, make_view
from featx.data.objectstore import Url
from featx.engine.commit import check_keepable, locked_run, plan_run
from featx.errors import CacheError, OptionError
from featx.features.reports import SkippedImage, ViewsReport
from featx.options import RunOptions


def check_views_engine(recipe: ViewRecipe, engine: str) -> None:
    """Views are embedded by this machine's executor; refused before anything runs on another engine (and
    before the options are built: whether or not that engine's library is installed)."""
    if recipe.count and engine != "local":
        raise OptionError("{param} are embedded on the local engine only; drop {param} for the cluster run and "
                          "embed the views with the local engine (the plain vectors are reused).", param="views")


def training_views(plain: CacheIndex, recipe: ViewRecipe) -> tuple[ImageTable, np.ndarray]:
    """The views to hold: one row per (training image, view number) as a views cache stores it, and
    each row's image content id. Training images are the labelled ones with a vector, of the train
    split when the data has a split, else all of them."""
    images = plain.images
    embedded = np.isin(images.id, plain.vector_ids)
    has_split = bool(np.any(images.split != ""))
    training = np.flatnonzero(embedded & (images.label >= 0) & ((images.split == "train") if has_split else True))
    rows = np.repeat(training, recipe.count)
    views = np.tile(np.arange(recipe.count), len(training))
    table = images.take(rows)
    table.id = id_column(recipe.view_id(c, int(k)) for c, k in zip(table.id.tolist(), views))
    return table, images.id[rows]


def update_views(cache_path: Path, root: Path | Url, config: EmbedConfig, recipe: ViewRecipe,
                 run: RunOptions = RunOptions(), *, progress=None, extractor=None, executor=None, wait: bool = True,
                 on_wait: Callable[[str], None] | None = None) -> ViewsReport:
    """Bring the views cache of ``recipe`` of the (just updated) cache at ``cache_path`` up to date:
    embed the views its training images lack (files under ``root``: the dataset's folder or URL),
    drop those of images gone. An ``executor`` (a :class:`featx.engine.executor.LocalExecutor`, or one
    shared with the plain run) or an ``extractor`` already built may be passed in."""
    from featx.cache.append import unwritable
    from featx.engine.executor import LocalExecutor

    started = time.perf_counter()
    plain = CacheIndex.read(cache_path)
    fingerprint = recipe.fingerprint(plain.fingerprint)
    path = views_cache_path(cache_path, recipe.augment, fingerprint)
    wanted, image_ids = training_views(plain, recipe)
    report = ViewsReport(path, recipe.count, recipe.augment, images=len(set(image_ids.tolist())))
    width = int(plain.attrs["feature_dim"])
    try:
        path.parent.mkdir(exist_ok=True)
    except OSError as exc:
        raise unwritable(path, f"the views need the folder {path.parent} ({exc.strerror or exc})") from None
    with locked_run(path, wait=wait, on_wait=on_wait) as writable:
        index = CacheIndex.read(path, hold=False, unreadable_ok=True) if path.exists() else None
        if index is not None and index.fingerprint != fingerprint:
            raise CacheError(f"{path} holds other views (fingerprint {index.fingerprint}, its name says {fingerprint}); "
                             "delete it and re-run 'featx embed --views'.")
        plan = plan_run(path, index, fingerprint, width, writable)
        needs, todo = _missing(wanted, image_ids, plan.have, root)
        if todo:
            plan.require_writable(f"{sum(map(len, needs.values()))} view(s) need embedding")
            executor = executor or LocalExecutor(config, run, extractor, planned=len(todo))
            keepable = functools.partial(check_keepable, dtype=plain.dtype, precision=config.precision)
            done, failed = _embed_views(path, fingerprint, todo, needs, recipe, executor, run.decode_workers, progress,
                                        keepable)
            plan.add(done)
            report.failed = [SkippedImage(str(todo[i]), reason) for i, reason in failed.items()]
        table = wanted.take(plan.have.contains(wanted.id))
        report.embedded = int(sum(vid in plan.embedded for vid in table.id.tolist()))
        report.reused = len(table) - report.embedded
        plan.commit_if_changed(
            images=table, skipped=SkipTable.empty(), classes=list(plain.classes), root=str(plain.attrs.get("root", "")),
            attrs=lambda: _attrs(plain, recipe, fingerprint, width), feature_dim=width, dtype=plain.dtype,
            embedded=set(table.id.tolist()) & plan.embedded, why="the training images changed since the views were embedded")
    report.seconds = time.perf_counter() - started
    return report


def _missing(wanted: ImageTable, image_ids: np.ndarray, have: IdSet,
             root: Path | Url) -> tuple[dict[bytes, list[bytes]], dict[bytes, Path | Url]]:
    """The view ids each image still needs (by content id), and the file to decode for each image."""
    needs: dict[bytes, list[bytes]] = {}
    todo: dict[bytes, Path | Url] = {}
    lacking = ~have.contains(wanted.id)
    for content_id, vid, relative in zip(image_ids[lacking].tolist(), wanted.id[lacking].tolist(), wanted.path[lacking]):
        if vid not in needs.get(content_id, ()):
            needs.setdefault(content_id, []).append(vid)
            todo.setdefault(content_id, root / relative)
    return needs, todo


def _embed_views(path: Path, fingerprint: str, todo: dict, needs: dict[bytes, list[bytes]], recipe: ViewRecipe,
                 executor, workers: int, progress, keepable: Callable[[np.ndarray], None],
                 ) -> tuple[set[bytes], dict[bytes, str]]:
    """Decode each image of ``todo`` once, make the views it needs (in ``workers`` threads: NumPy
    releases the GIL), embed them and commit each batch as a shard; returns the view ids embedded
    and the images that failed (content id: reason); ``keepable`` refuses a batch the cache would
    keep wrong (:func:`featx.engine.commit.check_keepable`)."""
    advance = progress(sum(map(len, needs.values()))) if progress else None
    done: set[bytes] = set()
    failed: dict[bytes, str] = {}
    with ThreadPoolExecutor(workers) as pool:
        batches = executor.batches(todo, expand=lambda ids, pixels: _views_of(ids, pixels, needs, recipe, pool.map),
                                   per_image=max(map(len, needs.values())))
        for ids, vectors, failures in batches:
            keepable(vectors)
            write_shard(path, fingerprint, id_column(ids), vectors, backend=executor.backend)
            done.update(ids)
            failed.update((i, str(e)) for i, e in failures)
            if advance:
                advance(len(ids) + sum(len(needs[i]) for i, _ in failures))
    return done, failed


def _views_of(ids: list[bytes], pixels: np.ndarray, needs: dict[bytes, list[bytes]], recipe: ViewRecipe,
              map_: Callable = map) -> tuple[list[bytes], np.ndarray]:
    """The views each decoded image still needs, as (view ids, their pixels), made by ``map_``."""
    jobs = [(row, vid) for row, content_id in enumerate(ids) for vid in needs[content_id]]
    views = list(map_(lambda job: make_view(pixels[job[0]], recipe, job[1]), jobs))
    return [vid for _, vid in jobs], (np.stack(views) if views else np.zeros((0, *pixels.shape[1:]), np.float32))


def _attrs(plain: CacheIndex, recipe: ViewRecipe, fingerprint: str, width: int) -> dict[str, object]:
    return {
        "kind": VIEWS_KIND,
        "fingerprint": fingerprint,
        "config": json.dumps(recipe.config(plain.fingerprint), sort_keys=True),
        "views_of": plain.fingerprint,
        "views": recipe.count,
        "augment": recipe.augment,
        "backbone": str(plain.attrs.get("backbone", "")),
        "dataset": str(plain.attrs.get("dataset", "")),
        "root": str(plain.attrs.get("root", "")),
        "layout": str(plain.attrs.get("layout", "")),
        "feature_dim": width,
        "updated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        **recorded_versions(),
    }


