"""Augmented views of a dataset's training images, cached beside its plain vectors.

``featx embed --views K`` embeds, after the plain vectors, K views (:mod:`featx.augment`) of every
training image: the labelled images of the train split, or every labelled image when the data has
no split (a head draws its hold-out at fit time and uses only the views of the images it trains on).
They live in ``<cache>.h5.views/<recipe>--<fingerprint>.h5``, an ordinary featx cache whose rows are
views (id: :func:`featx.augment.view_id`; path, label and split: their image's), committed like any
cache (shards, then one new segment per run: a killed run loses one batch), so a rerun embeds only the
views of new images, or of new view numbers. Its fingerprint holds the plain cache's and the recipe;
the plain cache and its fingerprint are not touched. Views never leave their image: a head trains on
the views of its training images only, and is evaluated on plain vectors only.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path

import numpy as np

from featx._versions import recorded_versions
from featx.augment import ViewRecipe, make_view
from featx.cache.append import commit, plan_segments
from featx.cache.locate import views_cache_path, views_caches
from featx.cache.lock import cache_lock
from featx.cache.schema import VIEWS_KIND
from featx.cache.shards import write_shard
from featx.cache.store import CacheIndex, read_vectors, remove_stale_temporaries, usable_rows
from featx.cache.tables import ImageTable, SkipTable, id_column
from featx.config import EmbedConfig
from featx.errors import CacheError, CacheNotFoundError, OptionError
from featx.features import Features, SkippedImage
from featx.objectstore import Url
from featx.options import RunOptions


@dataclass
class ViewsReport:
    """What one views run did (counts are views, not images)."""

    cache_path: Path
    count: int
    augment: str
    images: int = 0  # training images that were given views
    embedded: int = 0
    reused: int = 0
    failed: list[SkippedImage] = field(default_factory=list)  # images whose views could not be made this run
    seconds: float = 0.0

    def to_dict(self) -> dict[str, object]:
        return {"cache": str(self.cache_path), "views_per_image": self.count, "augment": self.augment,
                "images": self.images, "embedded": self.embedded, "reused": self.reused,
                "failed": [f.to_dict() for f in self.failed], "seconds": round(self.seconds, 3)}


def check_views_engine(recipe: ViewRecipe, run: RunOptions) -> None:
    """Views are embedded by this machine's executor; refused before anything runs on another engine."""
    if recipe.count and run.engine != "local":
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
    drop those of images gone. An ``executor`` (a :class:`featx.embedding.LocalExecutor`, or one
    shared with the plain run) or an ``extractor`` already built may be passed in."""
    from featx.embedding import LocalExecutor, changed_index, committed_work, unwritable

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
    with cache_lock(path, wait=wait, on_wait=on_wait, read_only_ok=True) as writable:
        if writable:
            remove_stale_temporaries(path)
        index = CacheIndex.read(path) if path.exists() else None
        if index is not None and index.fingerprint != fingerprint:
            raise CacheError(f"{path} holds other views (fingerprint {index.fingerprint}, its name says {fingerprint}); "
                             "delete it and re-run 'featx embed --views'.")
        plan = plan_segments(index, width)
        have, _ = committed_work(index, plan, path, fingerprint, width)
        reused = have.copy()
        needs, todo = _missing(wanted, image_ids, have, root)
        if todo and not writable:
            raise unwritable(path, f"{sum(map(len, needs.values()))} view(s) need embedding")
        if todo:
            executor = executor or LocalExecutor(config, run, extractor, planned=len(todo))
            done, failed = _embed_views(path, fingerprint, todo, needs, recipe, executor, run.decode_workers, progress)
            have |= done
            report.failed = [SkippedImage(str(todo[i]), reason) for i, reason in failed.items()]
        table = wanted.take(np.asarray([vid in have for vid in wanted.id.tolist()], dtype=bool))
        report.embedded = int(sum(vid not in reused for vid in table.id.tolist()))
        report.reused = len(table) - report.embedded
        skipped = SkipTable.empty()
        if changed_index(index, plan, path, table, skipped, plain.classes, str(plain.attrs.get("root", ""))):
            if not writable:
                raise unwritable(path, "the training images changed since the views were embedded")
            commit(path, index, plan, attrs=_attrs(plain, recipe, fingerprint, width), classes=list(plain.classes),
                   images=table, skipped=skipped, feature_dim=width, dtype=plain.dtype,
                   embedded=set(table.id.tolist()) - reused)
    report.seconds = time.perf_counter() - started
    return report


def _missing(wanted: ImageTable, image_ids: np.ndarray, have: set[bytes],
             root: Path | Url) -> tuple[dict[bytes, list[bytes]], dict[bytes, Path | Url]]:
    """The view ids each image still needs (by content id), and the file to decode for each image."""
    needs: dict[bytes, list[bytes]] = {}
    todo: dict[bytes, Path | Url] = {}
    for content_id, vid, relative in zip(image_ids.tolist(), wanted.id.tolist(), wanted.path):
        if vid not in have and vid not in needs.get(content_id, ()):
            needs.setdefault(content_id, []).append(vid)
            todo.setdefault(content_id, root / relative)
    return needs, todo


def _embed_views(path: Path, fingerprint: str, todo: dict, needs: dict[bytes, list[bytes]], recipe: ViewRecipe,
                 executor, workers: int, progress) -> tuple[set[bytes], dict[bytes, str]]:
    """Decode each image of ``todo`` once, make the views it needs (in ``workers`` threads: NumPy
    releases the GIL), embed them and commit each batch as a shard; returns the view ids embedded
    and the images that failed (content id: reason)."""
    advance = progress(sum(map(len, needs.values()))) if progress else None
    done: set[bytes] = set()
    failed: dict[bytes, str] = {}
    with ThreadPoolExecutor(workers) as pool:
        batches = executor.batches(todo, expand=lambda ids, pixels: _views_of(ids, pixels, needs, recipe, pool.map),
                                   per_image=max(map(len, needs.values())))
        for ids, vectors, failures in batches:
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


@dataclass(frozen=True, eq=False)
class Views:
    """Cached augmented views: row ``i`` of ``X`` is view ``view[i]`` of the image whose content id
    is ``image_ids[i]`` (as in :attr:`featx.features.Features.ids`)."""

    X: np.ndarray
    image_ids: np.ndarray
    view: np.ndarray
    count: int  # views per training image
    augment: str
    fingerprint: str  # of the views (recipe + plain fingerprint)
    plain_fingerprint: str
    cache_path: Path

    def __len__(self) -> int:
        return len(self.X)

    @cached_property
    def _rows_by_image(self) -> dict[str, list[int]]:
        """The view rows of each image, built once (compare fits every head on the same views)."""
        by_image: dict[str, list[int]] = {}
        for row, image in enumerate(self.image_ids.tolist()):
            by_image.setdefault(image, []).append(row)
        return by_image

    def rows_of(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For images ``ids`` (repeats allowed): the view rows of each, and the position in ``ids``
        each row belongs to; images without views contribute none."""
        by_image = self._rows_by_image
        rows, owners = [], []
        for position, image in enumerate(np.asarray(ids).tolist()):
            mine = by_image.get(image, ())
            rows.extend(mine)
            owners.extend([position] * len(mine))
        return np.asarray(rows, np.int64), np.asarray(owners, np.int64)

    def describe(self) -> dict[str, object]:
        return {"views_per_image": self.count, "augment": self.augment, "fingerprint": self.fingerprint,
                "cache": str(self.cache_path)}


def load_views(cache: Features | str | os.PathLike, augment: str | None = None) -> Views:
    """The augmented views embedded for a cache (``featx embed --views K``), for its current vectors.

    ``cache`` is the plain cache (or its :class:`Features`); ``augment`` names the recipe, needed
    when several were embedded (an :class:`OptionError` lists them).
    """
    plain_path = cache.cache_path if isinstance(cache, Features) else Path(cache)
    if plain_path is None:
        raise OptionError("{param} needs features read from a cache (they have no cache_path).", param="views")
    plain = CacheIndex.read(plain_path)
    path = _views_path(plain_path, plain, augment)
    index = CacheIndex.read(path)
    if index.attrs.get("kind") != VIEWS_KIND or index.attrs.get("views_of") != plain.fingerprint:
        raise CacheError(f"{path} does not hold views of {plain_path}; delete it and re-run 'featx embed --views'.")
    recipe = _stored_recipe(index, plain, path)
    back = {recipe.view_id(c, k): (c, k) for c in set(plain.images.id.tolist()) for k in range(recipe.count)}
    listed = [vid for vid in index.images.id.tolist() if vid in back]  # an image gone since: its views unused
    row_of = {vid: row for row, vid in enumerate(index.vector_ids.tolist())}
    rows = np.asarray([row_of[vid] for vid in listed], np.int64)
    X = read_vectors(index, rows)
    if not usable_rows(X).all():  # never train on them
        raise CacheError(f"{path} holds views with NaN, infinite or absurd values; delete it and re-run "
                         "'featx embed --views'.")
    return Views(
        X=X, image_ids=np.asarray([back[v][0].decode() for v in listed], dtype=object),
        view=np.asarray([back[v][1] for v in listed], np.int64),
        count=recipe.count, augment=recipe.augment, fingerprint=index.fingerprint,
        plain_fingerprint=plain.fingerprint, cache_path=path,
    )


def _stored_recipe(index: CacheIndex, plain: CacheIndex, path: Path) -> ViewRecipe:
    """The recipe a views cache was made with, checked against its fingerprint."""
    try:
        recipe = ViewRecipe(int(index.attrs.get("views", 0)), str(index.attrs.get("augment", "")))
    except (OptionError, TypeError, ValueError):
        recipe = None
    if recipe is None or recipe.fingerprint(plain.fingerprint) != index.fingerprint:
        raise CacheError(f"{path} records another recipe than its fingerprint says; delete it and re-run "
                         "'featx embed --views'.")
    return recipe


def _views_path(plain_path: Path, plain: CacheIndex, augment: str | None) -> Path:
    """The views cache of ``plain`` for recipe ``augment``, or its only one."""
    if augment is not None:
        recipe = ViewRecipe(augment=augment)
        path = views_cache_path(plain_path, recipe.augment, recipe.fingerprint(plain.fingerprint))
        if not path.exists():
            raise CacheNotFoundError(f"{plain_path} has no views made by {{param}} {recipe.augment}; embed them with "
                                     f"'featx embed --views K --augment {recipe.augment} DATA'.", param="augment")
        return path
    found = {}
    for path in views_caches(plain_path):
        try:
            index = CacheIndex.read(path, check=False)
        except CacheError:
            continue
        if index.attrs.get("views_of") == plain.fingerprint:
            found[str(index.attrs.get("augment", path.name))] = path
    if len(found) > 1:  # never a silent pick: the recipe decides what the head learns
        raise OptionError(f"{plain_path} has views of {len(found)} recipes ({'; '.join(sorted(found))}); choose one "
                          "with {param}.", param="augment")
    if not found:
        raise CacheNotFoundError(f"{plain_path} has no augmented views; embed them with 'featx embed --views K DATA' "
                                 "(the plain vectors are reused), or drop {param}.", param="views")
    return next(iter(found.values()))
