"""Approximate nearest neighbours of one segment's vectors (faiss, ``pip install "featx[search]"``),
and the merge of every segment's answers into one top-k.

A segment of fewer than ``FLAT_ROWS`` vectors gets an exact flat index (nothing to train: adding a
small segment costs what copying it costs); a larger one an inverted file (IVF, ``sqrt(n)`` lists,
trained on a seeded sample), searched in ``nprobe`` lists. faiss is a well-kept library (Meta, the
index clip-retrieval and FiftyOne use) whose IVF and flat scans are SIMD and multi-threaded: writing
k-means and inverted lists again would be slower and a second home for the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from featx.errors import MissingDependencyError
from featx.search.exact import TopK

FLAT_ROWS = 50_000  # below this a segment is scanned exactly: a 50k x 768 scan takes ~2 ms
NPROBE = 48  # lists searched per IVF segment: recall@10 0.962 at 100k (IVF316), 32 gives 0.944 (benchmarks/search.py)
TRAIN_PER_LIST = 40  # k-means sample: faiss wants at least 39 points per list


def import_faiss(param: str = "method"):
    """faiss, or a one-line MissingDependencyError saying what to install."""
    try:
        import faiss
    except ImportError:
        raise MissingDependencyError('{param}: an approximate search index needs faiss; install it with: '
                                     'pip install "featx[search]"', param=param) from None
    return faiss


def lists_for(rows: int) -> int:
    """Inverted lists of an IVF index of ``rows`` vectors (0: a flat index)."""
    return 0 if rows < FLAT_ROWS else int(np.sqrt(rows))


def build(blocks: Iterable[np.ndarray], rows: int, width: int, *, sample: np.ndarray | None = None, seed: int = 0):
    """An inner-product index of ``rows`` unit vectors given block by block (``sample``: unit rows to
    train an IVF index on, needed when ``rows >= FLAT_ROWS``)."""
    faiss = import_faiss()
    nlist = lists_for(rows)
    if nlist == 0:
        index = faiss.IndexFlatIP(width)
    else:
        index = faiss.index_factory(width, f"IVF{nlist},Flat", faiss.METRIC_INNER_PRODUCT)
        index.cp.seed, index.cp.niter = seed, 10
        index.train(np.ascontiguousarray(sample, np.float32))
    for block in blocks:
        index.add(np.ascontiguousarray(block, np.float32))
    return index


def training_rows(rows: int, seed: int = 0) -> np.ndarray:
    """The rows (sorted) an IVF index of ``rows`` vectors trains on: a seeded sample."""
    wanted = min(rows, TRAIN_PER_LIST * lists_for(rows))
    return np.sort(np.random.default_rng(seed).choice(rows, wanted, replace=False))


def search(parts: Sequence[tuple[object, int]], queries: np.ndarray, k: int, *, allowed: np.ndarray | None = None,
           nprobe: int = NPROBE) -> tuple[np.ndarray, np.ndarray]:
    """Each query's ``k`` best vector rows over segment indexes ``parts`` ((index, first row), in
    row order): (scores, rows), best first, padded with -inf and -1. ``allowed`` masks vector rows."""
    faiss = import_faiss()
    queries = np.ascontiguousarray(queries, np.float32)
    top = TopK(len(queries), k)
    for index, start in parts:
        selector = None
        if allowed is not None:
            local = np.flatnonzero(allowed[start : start + index.ntotal]).astype(np.int64)
            if not len(local):
                continue
            selector = faiss.IDSelectorBatch(local)
        if hasattr(index, "nprobe"):
            params = faiss.SearchParametersIVF(nprobe=min(nprobe, index.nlist), sel=selector)
        else:
            params = faiss.SearchParameters(sel=selector)
        scores, rows = index.search(queries, min(k, index.ntotal), params=params)
        scores = np.where(rows >= 0, scores, -np.inf).astype(np.float32)
        top.add(scores, np.where(rows >= 0, rows + start, -1))
    scores, rows = top.result()
    out_scores, out_rows = np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
    out_scores[:, : scores.shape[1]], out_rows[:, : rows.shape[1]] = scores, rows
    return out_scores, out_rows
