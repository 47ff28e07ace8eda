"""Duplicates and leakage: the same content under several paths, and nearly the same vectors.

Exact duplicates share a content id (sha256 of the file): always found. Near-duplicates are distinct
contents whose vectors, as cached, have a cosine similarity of at least ``threshold`` *and* stand out
from their neighbourhoods: ``2 cos(a, b) - r_a - r_b >= margin``, where ``r_a`` is the mean
similarity of ``a`` to its NEIGHBOURS nearest images other than ``b`` (cross-domain similarity local
scaling, Lample et al., 2018). Plain cosine ranks look-alikes in dense classes (two plain grey trousers) with real copies;
the margin asks that a pair be closer to each other than to everything else around them, which an
edited copy is and a look-alike is not. Groups are complete-linkage (every member a near-duplicate of
every other), never chains. A group in several splits is a leak (a test image seen in training
inflates every metric); one carrying several labels a conflict (at most one label can be right).

The defaults were chosen on real features (benchmarks/inspect_real.py: Fashion-MNIST through an
ImageNet EfficientNet-Lite0, train images copied into test with small edits): at ``threshold`` 0.88
and ``margin`` 0.10, 4,000 clean images give 16 false pairs across splits (0.4 % of the images), and
the planted copies rank first among the leaks. Plain cosine alone cannot separate them: there,
look-alikes reach 0.96 and edited copies sink to 0.80.
"""

from __future__ import annotations

import numpy as np

from featx.data.records import SPLITS
from featx.errors import OptionError
from featx.features.vectors import Features
from featx.inspection.findings import Duplicate, label_name

BLOCK_ROWS = 1024  # rows of the similarity matrix computed at once (BLOCK_ROWS x N float32)
PAIRS_PER_IMAGE = 20  # more near-duplicate pairs than this per image: the threshold is too low
NEIGHBOURS = 5  # neighbours that say how crowded an image's surroundings are
MARGIN = 0.1  # how far a pair must stand above its neighbourhoods (see the module's docstring)


def unit_rows(X: np.ndarray) -> np.ndarray:
    """``X`` with every row scaled to length 1 (zero rows stay zero), float32."""
    X = np.asarray(X, dtype=np.float32)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return X / np.where(norms > 0, norms, 1.0)


def crowding(Z: np.ndarray, neighbours: int = NEIGHBOURS) -> np.ndarray:
    """Per unit row, its ``neighbours + 1`` highest cosine similarities to other rows, descending."""
    k = min(neighbours + 1, len(Z) - 1)
    out = np.zeros((len(Z), max(k, 0)), np.float32)
    if k < 1:
        return out
    for start in range(0, len(Z), BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, len(Z))
        sims = Z[start:stop] @ Z.T
        sims[np.arange(stop - start), np.arange(start, stop)] = -np.inf  # not itself
        out[start:stop] = -np.sort(-np.partition(sims, -k, axis=1)[:, -k:], axis=1)
    return out


def neighbourhood(top: np.ndarray, rows: np.ndarray, partner_sims: np.ndarray) -> np.ndarray:
    """The mean similarity of each of ``rows`` to its nearest neighbours, its partner not counted:
    a copy's own source must not make its neighbourhood look crowded."""
    k = max(top.shape[1] - 1, 1)
    best = top[rows]
    among = partner_sims >= best[:, min(k, best.shape[1]) - 1]  # the partner is one of the k nearest
    total = best[:, :k].sum(axis=1) + np.where(among, best[:, -1] - partner_sims, 0.0)
    return total / k


def similar_pairs(Z: np.ndarray, threshold: float, margin: float = MARGIN
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pairs ``i < j`` of unit rows with cosine ``>= threshold`` that stand ``margin`` above their
    neighbourhoods: (i, j, similarity, margin)."""
    crowd = crowding(Z)
    found: list[list[np.ndarray]] = [[], [], [], []]
    limit = PAIRS_PER_IMAGE * len(Z) + 1000
    for start in range(0, len(Z), BLOCK_ROWS):
        stop = min(start + BLOCK_ROWS, len(Z))
        sims = Z[start:stop] @ Z[start:].T  # the upper triangle's band: columns from `start` on
        i, j = np.nonzero(sims >= threshold)
        i, j = i[j > i], j[j > i]  # j counts from `start`, so this keeps i < j and drops the diagonal
        s = sims[i, j]
        i, j = i + start, j + start
        standing = 2 * s - neighbourhood(crowd, i, s) - neighbourhood(crowd, j, s)
        keep = standing >= margin
        for bucket, values in zip(found, (i[keep], j[keep], s[keep], standing[keep])):
            bucket.append(values)
        if sum(map(len, found[0])) > limit:
            raise OptionError(f"{{param}} {threshold} makes more than {limit} pairs of near-duplicates: "
                              "it links images that merely look alike; raise it (default 0.88).", param="threshold")
    if not found[0]:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32)
    return tuple(np.concatenate(bucket) for bucket in found)  # type: ignore[return-value]


def complete_groups(n: int, i: np.ndarray, j: np.ndarray, sims: np.ndarray) -> np.ndarray:
    """A group per node: complete linkage over the linked pairs, so every two members of a group are
    linked themselves (no chains through look-alikes); unlinked nodes are alone."""
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial.distance import squareform

    _, component = connected_components(coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n)), directed=False)
    group = component.astype(np.int64) * n  # room for each component's sub-groups
    link = {(int(a), int(b)): float(s) for a, b, s in zip(i, j, sims)}
    for c in np.flatnonzero(np.bincount(component) > 2):
        members = np.flatnonzero(component == c)
        distance = np.full((len(members), len(members)), 2.0)
        np.fill_diagonal(distance, 0.0)
        for x, a in enumerate(members):
            for y in range(x + 1, len(members)):
                s = link.get((int(a), int(members[y])))
                if s is not None:
                    distance[x, y] = distance[y, x] = 1.0 - s
        tree = linkage(squareform(distance, checks=False), method="complete")
        group[members] = c * n + fcluster(tree, 1.5, criterion="distance")
    return group


def find_duplicates(features: Features, *, threshold: float = 0.88, margin: float = MARGIN) -> list[Duplicate]:
    """Groups of exact and near duplicates: leaks first (exact, then the most standing-out), then
    conflicts, then the rest."""
    ids, first, content = np.unique(features.ids.astype(str), return_index=True, return_inverse=True)
    i, j, sims, standing = similar_pairs(unit_rows(features.X[first]), threshold, margin)
    group = complete_groups(len(ids), i, j, sims)
    lowest: dict[int, tuple[float, float]] = {}  # per group: the lowest similarity and margin of its links
    for a, b, s, m in zip(i, j, sims, standing):
        if group[a] == group[b]:
            old = lowest.get(int(group[a]), (1.0, np.inf))
            lowest[int(group[a])] = (min(old[0], float(s)), min(old[1], float(m)))
    group_of_row = group[content]
    order = np.argsort(group_of_row, kind="stable")
    bounds = np.flatnonzero(np.diff(group_of_row[order])) + 1
    groups = []
    for rows in np.split(order, bounds):
        if len(rows) > 1:
            similarity, stands = lowest.get(int(group_of_row[rows[0]]), (1.0, np.inf))
            groups.append(_group(features, rows, similarity, stands, exact=len(set(content[rows])) == 1))
    groups.sort(key=lambda g: (not g.leak, not g.conflict, not g.exact, -g.margin, g.paths))
    return groups


def _group(features: Features, rows: np.ndarray, similarity: float, margin: float, *, exact: bool) -> Duplicate:
    rows = rows[np.argsort(features.paths[rows].astype(str), kind="stable")]
    splits = tuple(str(s) for s in features.split[rows])
    labels = tuple(label_name(features, int(y)) for y in features.y[rows])
    return Duplicate(
        rows=tuple(int(r) for r in rows), paths=tuple(str(p) for p in features.paths[rows]),
        similarity=1.0 if exact else min(similarity, 1.0), splits=splits, labels=labels, exact=exact,
        leak=len({s for s in splits if s in SPLITS}) > 1, conflict=len({lb for lb in labels if lb}) > 1,
        margin=1.0 if exact or not np.isfinite(margin) else margin,
    )
