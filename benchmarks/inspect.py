"""How well and how fast does ``featx inspect`` find planted problems? A script that prints figures.

A labelled dataset of N cached vectors of width D (default 10,000 x 1,280, 10 classes, 80/20
train/test: an EfficientNetB0 cache of a small dataset) is generated with structure like a CNN's
(classes made of sub-clusters in a low-dimensional space, mapped up and ReLU'd). Then known
problems are planted: a share of labels flipped to another class, test images copied into train
with small changes (the vector moved a little), and images of another kind added under random
labels. The vectors are written into a real cache file, and inspected as ``featx inspect`` does:
recall of each kind among the top findings (as many as were planted), and the time.

    python benchmarks/inspect.py                          # 10,000 x 1,280
    python benchmarks/inspect.py --n 2000 --dim 512 --flip 0.05
"""

from __future__ import annotations

import os
import sys

# Run as a script, this file's folder comes first on sys.path, and this inspect.py would shadow the
# standard library's: put the repository there instead (also for tests.test_inspect's cache writer).
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[0] = ROOT

import argparse  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import replace  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402


def generate(args, rng):
    """Vectors, labels and splits of a clean dataset: K classes of 3 sub-clusters each."""
    latent, sub = 48, 3
    centres = rng.normal(0, 1, (args.classes, latent))
    offsets = rng.normal(0, 0.6, (args.classes, sub, latent))
    y = rng.integers(0, args.classes, args.n)
    z = centres[y] + offsets[y, rng.integers(0, sub, args.n)] + rng.normal(0, args.noise, (args.n, latent))
    up = rng.normal(0, 1 / np.sqrt(latent), (latent, args.dim))
    X = np.maximum(z @ up + rng.normal(0, 0.3, (args.n, args.dim)), 0)
    split = np.where(rng.random(args.n) < 0.2, "test", "train").astype(object)
    return X.astype(np.float32), y, split, up


def plant(args, rng, X, y, split, up):
    """Flip labels, copy test rows into train slightly changed, add rows of another kind; return
    the new arrays and the planted rows of each kind."""
    n = len(X)
    flipped = rng.choice(n, int(args.flip * n), replace=False)
    noisy = y.copy()
    noisy[flipped] = (y[flipped] + rng.integers(1, args.classes, len(flipped))) % args.classes
    test = np.flatnonzero(split == "test")
    sources = rng.choice(test[~np.isin(test, flipped)], int(args.copies * n), replace=False)
    change = rng.normal(0, args.change * np.linalg.norm(X[sources], axis=1, keepdims=True) / np.sqrt(X.shape[1]),
                        X[sources].shape)
    copies = np.maximum(X[sources] + change, 0)
    n_other = int(args.other * n)
    # Another kind of image fires other channels: its own map from a latent space of its own.
    elsewhere = rng.normal(0, 1 / np.sqrt(up.shape[0]), up.shape)
    other = np.maximum(rng.normal(0, 1, (n_other, up.shape[0])) @ elsewhere + rng.normal(0, 0.3, (n_other, X.shape[1])), 0)
    X = np.vstack([X, copies, other]).astype(np.float32)
    y = np.concatenate([noisy, noisy[sources], rng.integers(0, args.classes, n_other)])
    split = np.concatenate([split, np.full(len(sources), "train", object), np.full(n_other, "train", object)])
    pairs = [frozenset((int(s), n + i)) for i, s in enumerate(sources)]
    return X, y, split, set(flipped.tolist()), pairs, set(range(n + len(sources), len(X)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="clean images before planting")
    parser.add_argument("--dim", type=int, default=1280)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--noise", type=float, default=0.5, help="spread of a sub-cluster (latent units)")
    parser.add_argument("--flip", type=float, default=0.03, help="share of labels flipped")
    parser.add_argument("--copies", type=float, default=0.01, help="share: test images copied into train")
    parser.add_argument("--change", type=float, default=0.1, help="size of a copy's change, relative to the vector")
    parser.add_argument("--other", type=float, default=0.01, help="share: images of another kind added")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the best and the median are shown")
    args = parser.parse_args()

    import featx
    from featx.features import Features, load_features
    from featx.inspection.outliers import outlier_scores
    from featx.options import EmbedOptions
    from tests.test_inspect import write_features

    rng = np.random.default_rng(args.seed)
    clean = generate(args, rng)
    X, y, split, flipped, pairs, other = plant(args, rng, *clean)
    config = EmbedOptions("EfficientNetB0", weights="none").resolve()
    feats = Features(X=X, y=y.astype(np.int64), classes=tuple(f"class{i}" for i in range(args.classes)),
                     paths=np.asarray([f"/data/img{i:06d}.jpg" for i in range(len(X))], dtype=object),
                     ids=np.asarray([f"{i:064x}" for i in range(len(X))], dtype=object), split=split,
                     config=config.identity(), fingerprint=config.fingerprint, sources=config.sources())
    with tempfile.TemporaryDirectory() as tmp:
        cache = write_features(feats, Path(tmp) / "bench.h5", "/data")
        featx.inspect(feats.subset(np.arange(300)))  # warm up: the imports are the CLI figure's
        seconds, cli_seconds = [], []
        for _ in range(args.repeat):  # the machine may be shared: the best of a few runs is the cost
            started = time.perf_counter()
            result = featx.inspect(load_features(cache))
            seconds.append(time.perf_counter() - started)
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "featx", "inspect", str(cache), "--json"],
                                  capture_output=True, text=True, check=True)
            cli_seconds.append(time.perf_counter() - started)
            assert json.loads(done.stdout)["summary"]["images"] == len(X)

    # How hard the task is: a logreg head's test accuracy on the clean labels, before planting.
    accuracy = featx.fit_head(replace(feats.subset(np.arange(args.n)), y=clean[1].astype(np.int64)),
                              "logreg").metrics["test"]["accuracy"]
    top = {int(i.row) for i in result.label_issues[:len(flipped)]}
    found = {frozenset(d.rows) for d in result.duplicates if d.leak}
    outliers = {o.row for o in result.outliers[:len(other)]}
    print(f"{len(X)} cached vectors x {args.dim}, {args.classes} classes, {sum(split == 'test')} test; "
          f"planted {len(flipped)} flipped labels, {len(pairs)} test images copied into train "
          f"(change {args.change}), {len(other)} images of another kind; logreg test accuracy on the clean "
          f"labels {accuracy:.3f}")
    print(f"{'finding':<28} {'planted':>7} {'flagged':>7} {'recall':>7}   (recall among the top <planted> findings)")
    print(f"{'label issues':<28} {len(flipped):>7} {len(result.label_issues):>7} {len(top & flipped) / len(flipped):>7.3f}")
    print(f"{'near-duplicate leaks':<28} {len(pairs):>7} {sum(d.leak for d in result.duplicates):>7} "
          f"{sum(p in found for p in pairs) / len(pairs):>7.3f}   (groups across splits at the default threshold)")
    ranked = set(np.argsort(-outlier_scores(result.features))[:len(other)].tolist())
    print(f"{'outliers':<28} {len(other):>7} {len(result.outliers):>7} {len(outliers & other) / len(other):>7.3f}   "
          f"(by score alone, whatever the threshold: {len(ranked & other) / len(other):.3f})")
    print(f"seconds, best / median of {args.repeat}: load_features + inspect {min(seconds):.2f} / "
          f"{np.median(seconds):.2f} ({', '.join(f'{k} {v:.2f}' for k, v in result.timings.items())} in the last);  "
          f"'featx inspect CACHE --json' in a new process {min(cli_seconds):.2f} / {np.median(cli_seconds):.2f}")


if __name__ == "__main__":
    main()
