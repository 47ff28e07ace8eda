"""The rules issue 25 set from real features, on generated vectors: duplicate groups are cliques,
not chains; look-alikes in a crowded class are no duplicates; foreign images that resemble a class
in direction but lie where no class varies are outliers; the manifest drops only copies and
outliers by default, and keeps a clean set whole; the label head's held-out accuracy is reported."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import featx
from featx.errors import OptionError
from featx.features.vectors import Features
from featx.inspection import DEFAULT_DROP, write_manifest
from featx.inspection.duplicates import find_duplicates
from featx.options import EmbedOptions

CONFIG = EmbedOptions("MobileNetV2", weights="none", image_size=32).resolve()


def features(X, y, split=None, classes=("a", "b", "c")) -> Features:
    n = len(X)
    return Features(X=np.asarray(X, np.float32), y=np.asarray(y, np.int64), classes=classes,
                    paths=np.asarray([f"/data/img{i:04d}.png" for i in range(n)], dtype=object),
                    ids=np.asarray([hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)], dtype=object),
                    split=np.asarray(split if split is not None else ["train"] * n, dtype=object),
                    config=CONFIG.identity(), fingerprint=CONFIG.fingerprint, sources=CONFIG.sources())


def classes(rng, per_class=60, dim=32, spread=1.0):
    centres = rng.normal(size=(3, dim)) * 3
    y = np.repeat(np.arange(3), per_class)
    return centres[y] + rng.normal(size=(len(y), dim)) * spread, y


def test_a_chain_of_near_copies_is_not_one_group():
    rng = np.random.default_rng(0)
    X, y = classes(rng)
    step = rng.normal(size=X.shape[1])
    step *= 0.45 * np.linalg.norm(X[0]) / np.linalg.norm(step)
    chain = np.stack([X[0] + step * t for t in (1, 2, 3)])  # each one close to the next, the ends apart
    feats = features(np.vstack([X, chain]), np.concatenate([y, [0, 0, 0]]))
    Z = feats.X / np.linalg.norm(feats.X, axis=1, keepdims=True)
    rows = [0, len(X), len(X) + 1, len(X) + 2]
    sims = Z[rows] @ Z[rows].T
    assert sims[0, 1] > 0.9 and sims[1, 2] > 0.9 and sims[2, 3] > 0.9 and sims[0, 3] < 0.9  # a chain
    groups = find_duplicates(feats, threshold=0.9, margin=0.0)
    for group in groups:  # complete linkage: every two members of a group are near-duplicates
        members = list(group.rows)
        assert (Z[members] @ Z[members].T).min() >= 0.9 - 1e-6
    assert not any({0, len(X) + 2} <= set(g.rows) for g in groups)


def test_look_alikes_in_a_crowded_class_are_no_duplicates_but_a_copy_among_them_is():
    rng = np.random.default_rng(1)
    X, y = classes(rng, spread=0.8)  # crowded classes: same-class cosine ~0.93, as on real features
    Z = X / np.linalg.norm(X, axis=1, keepdims=True)
    same = (Z @ Z.T)[np.triu_indices(len(Z), 1)][(y[:, None] == y[None, :])[np.triu_indices(len(Z), 1)]]
    assert np.median(same) > 0.9 and np.sum(same >= 0.88) > 1000  # plain cosine would pair thousands
    copy = X[5] + 0.02 * rng.normal(size=X.shape[1])
    split = ["train"] * len(X) + ["test"]
    found = featx.inspect(features(np.vstack([X, copy]), np.concatenate([y, [0]]), split))
    assert [set(d.rows) for d in found.duplicates] == [{5, len(X)}]
    assert found.duplicates[0].leak and found.duplicates[0].margin > 0.08


def test_images_off_every_class_are_outliers_though_close_in_cosine():
    """Classes that vary widely along a few directions and hardly along the rest: an image one small
    step off along a quiet direction is close to its class mean in cosine (the old per-class cosine
    score ranked it below the typical members) but far in the class's own shape (Mahalanobis)."""
    rng = np.random.default_rng(2)
    dim = 32
    centres = rng.normal(size=(3, dim)) * 4
    centres[:, 10] = 0
    y = np.repeat(np.arange(3), 150)
    spread = np.full(dim, 0.1)
    spread[:4] = 2.0
    X = centres[y] + rng.normal(size=(len(y), dim)) * spread
    off = np.zeros(dim)
    off[10] = 3.0
    foreign = centres + off + rng.normal(size=(3, dim)) * 0.05
    Z = np.vstack([X, foreign])
    Z = Z / np.linalg.norm(Z, axis=1, keepdims=True)
    mean = centres[0] / np.linalg.norm(centres[0])
    assert 1 - Z[len(X)] @ mean < np.median(1 - Z[:len(X)][y == 0] @ mean)  # closer in cosine than typical
    found = featx.inspect(features(np.vstack([X, foreign]), np.concatenate([y, [0, 1, 2]])))
    assert {o.row for o in found.outliers[:3]} == set(range(len(X), len(X) + 3))
    assert len(found.outliers) <= 3 + 2 and found.outliers[2].score > 6


def test_label_issues_are_ranked_by_doubt_and_come_with_the_heads_held_out_accuracy():
    rng = np.random.default_rng(3)
    X, y = classes(rng, spread=1.5)
    flipped = y.copy()
    flipped[[3, 70, 150]] = (y[[3, 70, 150]] + 1) % 3
    found = featx.inspect(features(X, flipped))
    assert 0.9 < found.label_accuracy <= 1.0 and found.summary()["label_accuracy"] == round(found.label_accuracy, 4)
    assert {3, 70, 150} <= {issue.row for issue in found.label_issues[:5]}
    scores = [issue.score for issue in found.label_issues]
    assert scores == sorted(scores, reverse=True)
    for issue in found.label_issues:  # score = 1 - p(given); the suggested class is more probable than the given
        assert issue.confidence > 1 - issue.score
    shuffled = featx.inspect(features(X, rng.permutation(y)))
    assert shuffled.label_accuracy < 0.6 and any("unreliable" in note for note in shuffled.notes)


def test_default_manifest_keeps_label_issues_and_a_clean_set(tmp_path):
    rng = np.random.default_rng(4)
    X, y = classes(rng, per_class=200, dim=64, spread=12.0)
    split = np.where(rng.random(len(y)) < 0.2, "test", "train")
    clean = featx.inspect(features(X, y, split))
    assert clean.label_issues  # diffuse classes: some images look like another class
    kept = write_manifest(clean, tmp_path / "clean.csv")
    assert kept.kept >= 0.98 * len(y)
    assert DEFAULT_DROP == ("duplicates", "outliers")

    flipped = y.copy()
    flipped[[7, 300]] = (y[[7, 300]] + 1) % 3
    copy = X[11] + 0.01 * rng.normal(size=X.shape[1])
    feats = features(np.vstack([X, copy]), np.concatenate([flipped, [y[11]]]),
                     np.concatenate([split, ["test" if split[11] == "train" else "train"]]))
    found = featx.inspect(feats)
    issues = {i.row: i for i in found.label_issues}
    assert {7, 300} <= set(issues)
    written = write_manifest(found, tmp_path / "m.csv")
    lines = written.path.read_text().splitlines()
    names = {line.split(",")[0].rsplit("/", 1)[1]: line.split(",")[1] for line in lines[1:]}
    assert "img0007.png" in names and names["img0007.png"] == feats.classes[flipped[7]]  # kept, as labelled
    assert ("img0011.png" in names) != (f"img{len(X):04d}.png" in names)  # one of the leaked pair stays
    relabelled = write_manifest(found, tmp_path / "r.csv", relabel=True)
    fixed = {line.split(",")[0].rsplit("/", 1)[1]: line.split(",")[1]
             for line in relabelled.path.read_text().splitlines()[1:]}
    assert fixed["img0007.png"] == issues[7].suggested == feats.classes[y[7]] and relabelled.relabelled >= 2
    dropped = write_manifest(found, tmp_path / "d.csv", drop=["label_issues", "duplicates", "outliers"])
    assert dropped.left_out >= written.left_out + len(found.label_issues) - 1


def test_a_threshold_that_links_everything_is_refused():
    X = np.random.default_rng(0).normal(size=(156, 3))
    with pytest.raises(OptionError, match="'threshold' parameter 0.01 makes more than"):
        find_duplicates(features(X, np.zeros(156)), threshold=0.01, margin=-3.0)


def test_within_split_near_copies_are_listed_not_dropped(tmp_path):
    rng = np.random.default_rng(5)
    X, y = classes(rng)
    copy = X[9] + 0.01 * rng.normal(size=X.shape[1])
    found = featx.inspect(features(np.vstack([X, copy]), np.concatenate([y, [y[9]]])))
    assert [set(d.rows) for d in found.duplicates] == [{9, len(X)}] and not found.duplicates[0].leak
    assert write_manifest(found, tmp_path / "m.csv").left_out == len(found.outliers)
