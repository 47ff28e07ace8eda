"""Exact cosine search over a cache's segments: blocked matrix products, one block in memory at a time.

Each segment is read in order, ``BLOCK_ROWS`` vectors at a time (the same rows, in the same order,
as ``/vectors/id`` and :func:`featx.features.vectors.load_features`), scored against every query at
once and merged into a running top-k, so memory holds the queries, one block and the k best per
query whatever the size of the cache.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from featx.cache.store import CacheIndex

QUERY_ROWS = 2048  # queries scored at once: a block of scores is QUERY_ROWS x BLOCK_ROWS float32


def unit(X: np.ndarray) -> np.ndarray:
    """``X`` as float32 rows of length 1 (zero rows stay zero): cosine similarity is then a dot product."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


class TopK:
    """The ``k`` best (score, row) pairs of each query seen so far, merged block by block."""

    def __init__(self, n_queries: int, k: int):
        self.k = k
        self.scores = np.zeros((n_queries, 0), np.float32)
        self.rows = np.zeros((n_queries, 0), np.int64)

    def add(self, scores: np.ndarray, rows: np.ndarray) -> None:
        """Merge a block: ``scores`` (queries x m) of the vector rows ``rows`` (m, the same for every
        query, or queries x m)."""
        rows = np.broadcast_to(np.asarray(rows, np.int64), scores.shape)
        if scores.shape[1] > self.k:  # keep only each query's k best of the block before merging
            best = np.argpartition(-scores, self.k - 1, axis=1)[:, : self.k]
            scores, rows = np.take_along_axis(scores, best, axis=1), np.take_along_axis(rows, best, axis=1)
        scores, rows = np.hstack([self.scores, scores]), np.hstack([self.rows, rows])
        if scores.shape[1] > self.k:
            best = np.argpartition(-scores, self.k - 1, axis=1)[:, : self.k]
            scores, rows = np.take_along_axis(scores, best, axis=1), np.take_along_axis(rows, best, axis=1)
        self.scores, self.rows = scores, rows

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(scores, rows), each query's best first."""
        order = np.argsort(-self.scores, axis=1, kind="stable")
        return np.take_along_axis(self.scores, order, axis=1), np.take_along_axis(self.rows, order, axis=1)


def blocks(index: CacheIndex, segments: list[int] | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(vector rows, unit float32 vectors) of the cache, block by block in row order; ``segments``
    picks segments by their row in the segment table (None: all)."""
    width = int(index.attrs.get("feature_dim", 0))
    for source in index.sources():
        if segments is not None and source.segment not in segments:
            continue
        start = source.start
        for _, block in source.blocks(width):
            yield np.arange(start, start + len(block)), unit(block)
            start += len(block)


def exact_top_k(index: CacheIndex, queries: np.ndarray, k: int, allowed: np.ndarray | None = None,
                segments: list[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Each query's ``k`` most cosine-similar vector rows of the cache: (scores, rows), best first.

    ``queries`` are unit rows; ``allowed`` (a mask over the vector rows) leaves the others out.
    Rows a query has fewer than ``k`` of are padded with score -inf and row -1.
    """
    queries = unit(queries)
    tops = [TopK(len(queries[i : i + QUERY_ROWS]), k) for i in range(0, len(queries), QUERY_ROWS)]
    for rows, block in blocks(index, segments):
        if allowed is not None:
            keep = allowed[rows]
            if not keep.any():
                continue
            rows, block = rows[keep], block[keep]
        for top, start in zip(tops, range(0, len(queries), QUERY_ROWS)):
            top.add(queries[start : start + QUERY_ROWS] @ block.T, rows)
    return padded([top.result() for top in tops], len(queries), k)


def padded(parts: list[tuple[np.ndarray, np.ndarray]], n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Results of query chunks stacked, each row padded to ``k`` columns (score -inf, row -1)."""
    scores, rows = np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64)
    start = 0
    for part_scores, part_rows in parts:
        m, width = part_scores.shape
        scores[start : start + m, :width], rows[start : start + m, :width] = part_scores, part_rows
        start += m
    return scores, rows
