"""Reading the augmented views cached beside a cache's plain vectors (featx embed --views)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from featx.cache.locate import views_cache_path, views_caches
from featx.cache.schema import VIEWS_KIND
from featx.cache.store import CacheIndex, read_vectors, usable_rows
from featx.data.augment import ViewRecipe
from featx.errors import CacheError, CacheNotFoundError, OptionError
from featx.features.vectors import Features


@dataclass(frozen=True, eq=False)
class Views:
    """Cached augmented views: row ``i`` of ``X`` is view ``view[i]`` of the image whose content id
    is ``image_ids[i]`` (as in :attr:`featx.features.vectors.Features.ids`)."""

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
