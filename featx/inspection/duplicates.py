"""Duplicates and leakage: the same content under several paths, and nearly the same vectors.

Exact duplicates share a content id (sha256 of the file). Near-duplicates are distinct contents
whose vectors, centred on the dataset's mean, have a cosine similarity of at least ``threshold``:
the same photo resized, re-encoded, slightly cropped or recoloured. Linked images form one group. A group whose images lie
in several splits is a leak (a test image seen in training inflates every metric); one whose images
carry several labels is a conflict (at most one label can be right).
"""

from __future__ import annotations

import numpy as np

from featx.data.records import SPLITS
from featx.errors import OptionError
from featx.features.vectors import Features
from featx.inspection.findings import Duplicate, label_name

BLOCK_ROWS = 1024  # rows of the similarity matrix computed at once (BLOCK_ROWS x N float32)
PAIRS_PER_IMAGE = 20  # more near-duplicate pairs than this per image: the threshold is too low


def unit_rows(X: np.ndarray) -> np.ndarray:
    """``X`` with every row scaled to length 1 (zero rows stay zero), float32."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def similar_pairs(Z: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``i < j`` of unit rows with cosine similarity ``>= threshold``: (i, j, similarity)."""
    found_i, found_j, found_s = [], [], []
    limit = PAIRS_PER_IMAGE * len(Z) + 1000
    for start in range(0, len(Z), BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, len(Z))
        sims = Z[start:stop] @ Z[start:].T  # the upper triangle's band: columns from `start` on
        i, j = np.nonzero(sims >= threshold)
        above = j > i  # j counts from `start`, so this keeps i < j and drops the diagonal
        found_i.append(i[above] + start)
        found_j.append(j[above] + start)
        found_s.append(sims[i[above], j[above]])
        if sum(map(len, found_i)) > limit:
            raise OptionError(f"{{param}} {threshold} makes more than {limit} pairs of near-duplicates: "
                              "it links images that merely look alike; raise it (default 0.95).", param="threshold")
    if not found_i:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    return np.concatenate(found_i), np.concatenate(found_j), np.concatenate(found_s)


def find_duplicates(features: Features, *, threshold: float = 0.95) -> list[Duplicate]:
    """Groups of exact and near duplicates: leaks and conflicts first, then the most similar."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    ids, first, content = np.unique(features.ids.astype(str), return_index=True, return_inverse=True)
    vectors = features.X[first]
    # Centred on the dataset's mean: pooled CNN features share a large common part that makes any
    # two images look alike (cosine 0.9 and more); without it, similarity measures what differs.
    i, j, sims = similar_pairs(unit_rows(vectors - vectors.mean(axis=0)), threshold)
    graph = coo_matrix((np.ones(len(i)), (i, j)), shape=(len(ids), len(ids)))
    _, component = connected_components(graph, directed=False)
    lowest = np.ones(len(ids))  # per component: the lowest similarity among its links
    np.minimum.at(lowest, component[i], sims.astype(np.float64))
    group_of_row = component[content]
    order = np.argsort(group_of_row, kind="stable")
    bounds = np.flatnonzero(np.diff(group_of_row[order])) + 1
    groups = []
    for rows in np.split(order, bounds):
        if len(rows) > 1:
            groups.append(_group(features, rows, float(lowest[group_of_row[rows[0]]]),
                                 exact=len(set(content[rows])) == 1))
    groups.sort(key=lambda g: (not (g.leak or g.conflict), -g.similarity, g.paths))
    return groups


def _group(features: Features, rows: np.ndarray, similarity: float, *, exact: bool) -> Duplicate:
    rows = rows[np.argsort(features.paths[rows].astype(str), kind="stable")]
    splits = tuple(str(s) for s in features.split[rows])
    labels = tuple(label_name(features, int(y)) for y in features.y[rows])
    return Duplicate(
        rows=tuple(int(r) for r in rows), paths=tuple(str(p) for p in features.paths[rows]),
        similarity=1.0 if exact else min(similarity, 1.0), splits=splits, labels=labels, exact=exact,
        leak=len({s for s in splits if s in SPLITS}) > 1, conflict=len({lb for lb in labels if lb}) > 1,
    )
