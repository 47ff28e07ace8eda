"""``featx.search``: the cached images nearest to some queries, or to every image of another cache."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from featx.cache.store import CacheIndex
from featx.checks import check_choice, check_path, check_positive
from featx.errors import OptionError, OptionTypeError
from featx.features.vectors import load_features
from featx.options import RunOptions
from featx.search.exact import exact_top_k
from featx.search.images import CachedImages
from featx.search.queries import image_queries, text_queries
from featx.search.results import Match, SearchResult

AGAINST_ROWS = 16384  # images of the cache compared at once with the other cache (one pass over it each)
INDEX_ROWS = 100_000  # method="auto" uses the approximate index from this many vectors on (with faiss installed)
METHODS = ("auto", "exact", "index")


def open_images(cache: str | os.PathLike, param: str = "cache") -> CachedImages:
    """A cache opened for search: its index and its image rows (vectors left on disk)."""
    check_path(param, cache)
    features = load_features(cache, lazy=True)
    return CachedImages(CacheIndex.read(cache), features)


def search(
    cache: str | os.PathLike,
    queries: str | os.PathLike | Sequence[str | os.PathLike] = (),
    *,
    top: int | None = 10,
    split: str | None = None,
    label: str | None = None,
    against: str | os.PathLike | None = None,
    cache_dir: str | os.PathLike | None = None,
    batch_size: int | None = None,
    backend: str | None = None,
    method: str = "auto",
    text: str | Sequence[str] | None = None,
    text_model: str | os.PathLike | None = None,
    nprobe: int | None = None,
) -> SearchResult:
    """The ``top`` images of the feature cache ``cache`` most similar (cosine) to each query.

    ``queries`` are image files (embedded with the cache's exact backbone configuration, unless the
    cache already holds their bytes; through the loose-files cache in ``cache_dir``, default the
    cache's folder; ``batch_size`` and ``backend`` as for :func:`featx.embed`), paths the cache lists,
    or content ids. A query that names a cached image is left out of its own hits (other files with
    the same bytes are not). ``split`` and ``label`` keep only the images searched of that split and
    class. With ``against`` (another cache of the same backbone configuration) every image of
    ``cache`` is the query and gets its nearest image of ``against``: the matches, most similar
    first, are the images the two caches share (copies across datasets); ``top`` then counts the
    matches (None: all of them). Search is exact: blocked matrix products over the cache's segments,
    one block in memory at a time; ``method="index"`` uses instead the approximate index beside the
    cache (faiss: ``pip install "featx[search]"``; one index per segment, built when missing or
    stale, see :mod:`featx.search.stored`), and ``"auto"`` does so from ``INDEX_ROWS`` vectors on
    when faiss is installed. ``text`` (a sentence or several) searches by text on a cache of CLIP or
    SigLIP image features: the text tower of the cache's snapshot folder (or of ``text_model``)
    embeds each sentence (:mod:`featx.backbones.text_tower`). ``nprobe`` is how many inverted lists
    the index searches per large segment (default ``featx.search.ann.NPROBE``: fewer is faster and
    less exact, benchmarks/search.py); it applies to the index only.
    """
    started = time.perf_counter()
    check_choice("method", method, METHODS)
    if top is not None:
        check_positive("top", top)
    if nprobe is not None:
        check_positive("nprobe", nprobe)
        if method == "exact":
            raise OptionError("{param} applies to the approximate index; drop it, or search with method 'index'.",
                              param="nprobe")
    texts = [text] if isinstance(text, str) else list(text or [])
    if isinstance(queries, (str, os.PathLike)):
        queries = [queries]
    elif not isinstance(queries, Sequence):
        raise OptionTypeError(f"{{param}} must be a path or a list of paths or ids; got {type(queries).__name__}.",
                              param="queries")
    images = open_images(cache)
    if against is not None:
        if queries or texts:
            raise OptionError("{param} compares every image of the cache with another cache; give queries or "
                              "an other cache, not both.", param="against")
        other = open_images(against, "against")
        _check_comparable(images, other, against)
        searcher = _searcher(other.index, method, nprobe)
        matches = _against(images, other, top, split, label, searcher)
    else:
        if not queries and not texts:
            raise OptionError("{param}: give at least one image file, cached path or content id to search for.",
                              param="queries")
        mask, allowed = images.filters(split, label)  # refused before any query is embedded
        found = image_queries(images, list(queries), cache_dir=cache_dir,
                              run=RunOptions(batch_size=batch_size, backend=backend)) if queries else []
        found += text_queries(images, texts, text_model) if texts else []
        k = top or len(images.features.paths)
        vectors = np.stack([q.vector for q in found])
        searcher = _searcher(images.index, method, nprobe)
        scores, rows = searcher(vectors, k + 1, allowed)  # +1: a query leaves out one image, its own
        matches = [Match(q.text, images.hits(s, r, k, mask=mask, exclude=q.path)) for q, s, r in zip(found, scores, rows)]
    return SearchResult(cache=Path(cache), matches=tuple(matches), against=Path(against) if against else None,
                        method=searcher.method, seconds=time.perf_counter() - started, notes=searcher.notes)


def _check_comparable(images: CachedImages, other: CachedImages, against) -> None:
    """Refuse, in one line, another cache whose vectors cannot be compared with this one's."""
    mine, theirs = images.index, other.index
    if os.path.realpath(str(mine.path)) == os.path.realpath(os.fspath(against)):
        raise OptionError(f"{{param}} {against} is the cache searched; 'featx inspect' finds the duplicates "
                          "within one cache.", param="against")
    if mine.fingerprint != theirs.fingerprint:
        raise OptionError(f"{{param}} {against} was embedded with another backbone configuration "
                          f"({theirs.config.get('backbone')}, fingerprint {theirs.fingerprint[:12]}) than "
                          f"{mine.path} ({mine.config.get('backbone')}, {mine.fingerprint[:12]}): their vectors "
                          "cannot be compared; embed both datasets with the same options.", param="against")


def _against(images: CachedImages, other: CachedImages, top: int | None, split, label, searcher) -> list[Match]:
    """Every image of ``images`` with its nearest image of ``other`` (filtered), most similar first."""
    from featx.search.exact import blocks

    mask, allowed = other.filters(split, label)
    if allowed is not None and not allowed.any():
        return []
    matches: list[Match] = []
    chunk_rows: list[np.ndarray] = []
    chunk: list[np.ndarray] = []

    def flush() -> None:
        rows, vectors = np.concatenate(chunk_rows), np.concatenate(chunk)
        scores, hit_rows = searcher(vectors, 1, allowed)
        for row, s, r in zip(rows, scores, hit_rows):
            for image in images.images_of(int(row)):
                mine = images.hit(int(image), 0.0)
                matches.append(Match(mine.path, other.hits(s, r, 1, mask=mask), label=mine.label, split=mine.split))
        chunk_rows.clear()
        chunk.clear()

    for rows, block in blocks(images.index):
        chunk_rows.append(rows)
        chunk.append(block)
        if sum(map(len, chunk_rows)) >= AGAINST_ROWS:
            flush()
    if chunk_rows:
        flush()
    matches = [m for m in matches if m.hits]
    matches.sort(key=lambda m: (-m.score, m.query))
    return matches[:top] if top is not None else matches



class _Searcher:
    """``searcher(queries, k, allowed) -> (scores, rows)`` over one cache, exactly or with its index."""

    def __init__(self, index: CacheIndex, method: str, nprobe: int | None = None):
        self.index, self.method, self.parts, self.notes, self.nprobe = index, method, None, (), nprobe
        if method == "index":
            from featx.search.stored import open_index

            self.parts, report = open_index(index)
            built = len(report.built) + len(report.unstored)
            if built:
                self.notes = (f"indexed {built} of {built + len(report.reused)} segments in {report.seconds:.1f} s"
                              + (" (not stored: the cache folder is not writable)" if report.unstored else ""),)

    def __call__(self, queries: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        if self.parts is None:
            return exact_top_k(self.index, queries, k, allowed)
        from featx.search import ann
        from featx.search.exact import unit

        return ann.search(self.parts, unit(queries), k, allowed=allowed, nprobe=self.nprobe or ann.NPROBE)


def _searcher(index: CacheIndex, method: str, nprobe: int | None = None) -> _Searcher:
    """Exact search, or the approximate index when asked, or for ``auto`` on a large cache with faiss."""
    if method == "auto":
        import importlib.util

        large = len(index.vector_ids) >= INDEX_ROWS and index.version >= 2
        method = "index" if large and importlib.util.find_spec("faiss") is not None else "exact"
    return _Searcher(index, method, nprobe)
