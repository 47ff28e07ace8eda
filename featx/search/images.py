"""The images of a cache for search: which image rows share each vector row, and what a hit shows."""

from __future__ import annotations

import numpy as np

from featx.cache.store import CacheIndex
from featx.cache.tables import rows_of
from featx.errors import OptionError
from featx.features.vectors import Features, content_ids
from featx.search.results import Hit


class CachedImages:
    """A cache's image rows (from :func:`featx.features.vectors.load_features`, lazy) joined to the
    vector rows of its index: an image's vector row, and the image rows of a vector row (several
    files with the same bytes share one vector)."""

    def __init__(self, index: CacheIndex, features: Features):
        self.index, self.features = index, features
        self.vector_row = rows_of(index.vector_ids, content_ids(features))  # sorted columns, no dict
        self._order = np.argsort(self.vector_row, kind="stable")
        self._sorted = self.vector_row[self._order]
        self._by_path: dict[str, int] | None = None

    def images_of(self, vector_row: int) -> np.ndarray:
        """The image rows whose vector is ``vector_row``."""
        lo, hi = np.searchsorted(self._sorted, [vector_row, vector_row + 1])
        return self._order[lo:hi]

    def filters(self, split: str | None = None, label: str | None = None) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(image rows of ``split`` and ``label``, the vector rows with one of them) as masks; (None,
        None) when nothing is filtered."""
        from featx.checks import check_choice
        from featx.data.records import SPLITS

        if split is None and label is None:
            return None, None
        mask = np.ones(len(self.features.paths), bool)
        if split is not None:
            check_choice("split", split, SPLITS)
            mask &= self.features.split == split
        if label is not None:
            if label not in self.features.classes:
                known = ", ".join(self.features.classes[:10]) or "none: it is unlabelled"
                raise OptionError(f"{{param}} {label!r} is not a class of {self.index.path} (classes: {known}).",
                                  param="label")
            mask &= self.features.y == self.features.classes.index(label)
        allowed = np.zeros(len(self.index.vector_ids), bool)
        allowed[self.vector_row[mask]] = True
        return mask, allowed

    def row_of_path(self, path: str) -> int | None:
        """The image row listed under ``path`` (absolute, or as stored under the dataset root)."""
        if self._by_path is None:
            self._by_path = {str(p): row for row, p in enumerate(self.features.paths)}
        return self._by_path.get(path)

    def hit(self, image_row: int, score: float) -> Hit:
        f = self.features
        y = int(f.y[image_row])
        return Hit(path=str(f.paths[image_row]), label=f.classes[y] if y >= 0 else "", split=str(f.split[image_row]),
                   score=float(score), id=str(f.ids[image_row]))

    def hits(self, scores: np.ndarray, rows: np.ndarray, k: int, *, mask: np.ndarray | None = None,
             exclude: str | None = None) -> tuple[Hit, ...]:
        """Up to ``k`` hits from vector rows ranked best first, each expanded to its image rows (those
        in ``mask``, an image-row filter), leaving out the image at path ``exclude``."""
        found: list[Hit] = []
        for score, row in zip(scores, rows):
            if row < 0:
                break
            for image in self.images_of(int(row)):
                if (mask is None or mask[image]) and str(self.features.paths[image]) != exclude:
                    found.append(self.hit(int(image), score))
            if len(found) >= k:
                break
        return tuple(found[:k])
