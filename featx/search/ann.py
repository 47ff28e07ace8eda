"""Approximate nearest neighbours of one segment's vectors (faiss, ``pip install "featx[search]"``),
and the merge of every segment's answers into one top-k.

A segment of fewer than ``FLAT_ROWS`` vectors gets an exact flat index (nothing to train: adding a
small segment costs what copying it costs); a larger one an inverted file (IVF, ``sqrt(n)`` lists,
trained on a seeded sample), searched in ``nprobe`` lists. The lists hold 4-bit product codes
scanned with faiss's SIMD fast-scan kernels (``PQ{d/4}x4fs``: one 4-bit code per 4 numbers, a
sixteenth of float lists' bytes; scanning the probed lists is what a query's time goes to: at
1M x 768 a quarter of 8-bit codes' time or less, benchmarks/search.py), and the ``REFINE`` x k best
codes are re-scored exactly on the float vectors the index keeps beside them (``RFlat``): scores are
exact cosines, and searching every list finds the exact hits unless the codes rank a hit below
REFINE x k others. Single queries run on one faiss thread (a second thread only waits on a busy
machine, benchmarks/search.py), and so does the training of the product codes (d/4 small k-means
of a few thousand points each: on a loaded machine two threads' barriers took 15 times the work).
faiss is a well-kept library (Meta, the index clip-retrieval and FiftyOne use) whose IVF and flat
scans are SIMD and multi-threaded: writing k-means, product codes and inverted lists again would be
slower and a second home for the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from featx.errors import MissingDependencyError

FLAT_ROWS = 50_000  # below this a segment is scanned exactly: a 50k x 768 scan takes ~2 ms
# lists searched per IVF segment: recall@10 0.988 at 100k (IVF316; 48 gave 0.962, 64 0.976), 3.7 ms a query at
# 1M (IVF1000, recall 0.997) on a loaded 2-core machine (benchmarks/search.py, docs/search.md)
NPROBE = 96
TRAIN_PER_LIST = 40  # k-means sample: faiss wants at least 39 points per list
# what an IVF list holds: 4-bit product codes, one per 4 numbers, re-scored on floats; a width that 4 does
# not divide gets 8-bit codes ("SQ8,RFlat", the layout before; benchmarks/search.py --list-codes compares)
LIST_CODES = "PQ{pq}x4fs,RFlat"
REFINE = 10  # candidates re-scored exactly per hit wanted, from the codes' best
SINGLE_THREAD_QUERIES = 16  # fewer queries than this are searched on one faiss thread


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
        index = faiss.index_factory(width, f"IVF{nlist},{list_codes(width)}", faiss.METRIC_INNER_PRODUCT)
        ivf = faiss.extract_index_ivf(index)
        ivf.cp.seed, ivf.cp.niter = seed, 10
        sample = np.ascontiguousarray(sample, np.float32)
        faiss.Clustering(width, nlist, ivf.cp).train(sample, ivf.quantizer)  # the lists, on every thread
        threads = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)  # then the codes (the quantizer is trained: faiss keeps it)
        try:
            index.train(sample)
        finally:
            faiss.omp_set_num_threads(threads)
    for block in blocks:
        index.add(np.ascontiguousarray(block, np.float32))
    return index


def list_codes(width: int) -> str:
    """The faiss factory string of what an IVF list of ``width``-wide vectors holds (:data:`LIST_CODES`)."""
    return LIST_CODES.format(pq=width // 4) if width % 4 == 0 else "SQ8,RFlat"


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
    found_scores, found_rows = [], []  # at most k per part: merged once, at the end
    threads = faiss.omp_get_max_threads()
    if len(queries) < SINGLE_THREAD_QUERIES:
        faiss.omp_set_num_threads(1)
    try:
        for index, start in parts:
            selector = None
            if allowed is not None:
                local = np.flatnonzero(allowed[start : start + index.ntotal]).astype(np.int64)
                if not len(local):
                    continue
                selector = faiss.IDSelectorBatch(local)
            params = _parameters(faiss, index, nprobe, selector)
            scores, rows = index.search(queries, min(k, index.ntotal), params=params[-1])
            found_scores.append(np.where(rows >= 0, scores, -np.inf).astype(np.float32))
            found_rows.append(np.where(rows >= 0, rows + start, -1))
    finally:
        faiss.omp_set_num_threads(threads)
    scores = np.concatenate(found_scores, axis=1) if found_scores else np.zeros((len(queries), 0), np.float32)
    rows = np.concatenate(found_rows, axis=1) if found_rows else np.zeros((len(queries), 0), np.int64)
    best = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    scores, rows = np.take_along_axis(scores, best, axis=1), np.take_along_axis(rows, best, axis=1)
    out_scores, out_rows = np.full((len(queries), k), -np.inf, np.float32), np.full((len(queries), k), -1, np.int64)
    out_scores[:, : scores.shape[1]], out_rows[:, : rows.shape[1]] = scores, rows
    return out_scores, out_rows


def lists_of(index) -> int:
    """The inverted lists of a segment's index (0: a flat index)."""
    faiss = import_faiss()
    ivf = faiss.try_extract_index_ivf(index)
    return int(ivf.nlist) if ivf is not None else 0


def _parameters(faiss, index, nprobe: int, selector) -> list:
    """The search parameters of one segment's index, last; the ones it points to before it (kept alive)."""
    if isinstance(index, faiss.IndexRefine):  # coded lists re-scored on the floats (an IVF,Flat of before: below)
        base = _parameters(faiss, faiss.downcast_index(index.base_index), nprobe, selector)
        return [*base, faiss.IndexRefineSearchParameters(k_factor=REFINE, base_index_params=base[-1])]
    if hasattr(index, "nprobe"):
        return [faiss.SearchParametersIVF(nprobe=min(nprobe, index.nlist), sel=selector)]
    return [faiss.SearchParameters(sel=selector)]
