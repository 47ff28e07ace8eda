"""How well and how fast does ``featx inspect`` find planted problems? A script that prints figures.

A labelled dataset of N cached vectors of width D (default 10,000 x 1,280, 10 classes, 80/20
train/test: an EfficientNetB0 cache of a small dataset) is generated with structure like a CNN's
(classes made of sub-clusters in a low-dimensional space, mapped up and ReLU'd). Then known
problems are planted: a share of labels flipped to another class, test images copied into train
with small changes (the vector moved a little), and images of another kind added under random
labels. The vectors are written into a real cache file, and inspected as ``featx inspect`` does:
recall of each kind among the top findings (as many as were planted), and the time.

    python benchmarks/inspect_dataset.py                          # 10,000 x 1,280
    python benchmarks/inspect_dataset.py --n 2000 --dim 512 --flip 0.05

With ``--images DIR`` (class folders of real photos) the problems are planted in the images:
labels flipped in a manifest, test photos copied into train resized to 90 % and re-encoded as
JPEG, and rendered text pages (documents among the photos) added; the manifest is embedded with
``--backbone`` (ImageNet weights unless ``--weights none``) and inspected the same way.

    python benchmarks/inspect_dataset.py --images flowers/ --backbone EfficientNetB0
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
from typing import NamedTuple  # noqa: E402

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


class Planted(NamedTuple):
    """A cache with known problems: the paths of each kind, and how hard the clean task is."""

    cache: Path
    flipped: set[str]
    pairs: list[frozenset[str]]  # (test original, train copy)
    other: set[str]
    accuracy: float  # a logreg head's test accuracy on the clean labels
    about: str


def vectors_case(args, folder: Path) -> Planted:
    from featx.features.vectors import Features
    from featx.options import EmbedOptions
    from tests.inspection.test_inspect import write_features

    rng = np.random.default_rng(args.seed)
    clean = generate(args, rng)
    X, y, split, flipped, pairs, other = plant(args, rng, *clean)
    config = EmbedOptions("EfficientNetB0", weights="none").resolve()
    paths = np.asarray([f"/data/img{i:06d}.jpg" for i in range(len(X))], dtype=object)
    feats = Features(X=X, y=y.astype(np.int64), classes=tuple(f"class{i}" for i in range(args.classes)),
                     paths=paths, ids=np.asarray([f"{i:064x}" for i in range(len(X))], dtype=object), split=split,
                     config=config.identity(), fingerprint=config.fingerprint, sources=config.sources())
    cache = write_features(feats, folder / "bench.h5", "/data")
    return Planted(cache, {paths[i] for i in flipped}, [frozenset(paths[list(p)]) for p in pairs],
                   {paths[i] for i in other}, clean_accuracy(feats.subset(np.arange(args.n)), clean[1]),
                   f"{len(X)} cached vectors x {args.dim}, {args.classes} classes, {sum(split == 'test')} test")


def images_case(args, folder: Path) -> Planted:
    """Plant the problems in copies of the photos at ``args.images`` and embed them."""
    import csv

    from PIL import Image, ImageDraw

    import featx
    from featx.data.layouts import scan_dataset

    rng = np.random.default_rng(args.seed)
    data = scan_dataset(args.images)
    rows = [(str(data.root / r.path), r.label, r.split or ("test" if rng.random() < 0.2 else "train"))
            for r in data.records if r.label >= 0]
    labels = np.asarray([label for _, label, _ in rows])
    flip = rng.choice(len(rows), int(args.flip * len(rows)), replace=False)
    noisy = labels.copy()
    noisy[flip] = (labels[flip] + rng.integers(1, len(data.classes), len(flip))) % len(data.classes)
    entries = [(path, data.classes[noisy[i]], split) for i, (path, _, split) in enumerate(rows)]
    tests = [i for i, (_, _, split) in enumerate(rows) if split == "test" and i not in set(flip)]
    pairs = []
    for n, i in enumerate(rng.choice(tests, int(args.copies * len(rows)), replace=False)):
        with Image.open(rows[i][0]) as image:  # a resized, re-encoded copy put into train
            copy = image.convert("RGB").resize((int(image.width * 0.9), int(image.height * 0.9)))
        target = folder / "copies" / f"copy{n}.jpg"
        target.parent.mkdir(parents=True, exist_ok=True)
        copy.save(target, quality=85)
        entries.append((str(target), data.classes[noisy[i]], "train"))
        pairs.append(frozenset((rows[i][0], str(target))))
    other = set()
    for n in range(int(args.other * len(rows))):  # a page of text: a document among the photos
        page = Image.new("RGB", (400, 520), "white")
        draw = ImageDraw.Draw(page)
        for line in range(24):
            words = " ".join("".join(chr(97 + c) for c in rng.integers(0, 26, rng.integers(2, 9))) for _ in range(6))
            draw.text((20, 20 + 20 * line), words, fill="black")
        target = folder / "documents" / f"page{n}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        page.save(target)
        entries.append((str(target), data.classes[rng.integers(len(data.classes))], "train"))
        other.add(str(target))
    manifest = folder / "planted.csv"
    with open(manifest, "w", newline="") as handle:
        csv.writer(handle).writerows([("path", "label", "split"), *entries])
    feats = featx.embed(manifest, args.backbone, weights=args.weights, image_size=args.image_size,
                        cache=folder / "cache")
    original = {path: label for path, label, _ in rows}
    keep = np.asarray([p in original for p in feats.paths])
    truth = np.asarray([feats.classes.index(data.classes[original[p]]) for p in feats.paths[keep]])
    return Planted(feats.cache_path, {rows[i][0] for i in flip}, pairs, other,
                   clean_accuracy(feats.subset(keep), truth),
                   f"{len(feats)} photos of {args.images} embedded with {args.backbone} "
                   f"(weights {args.weights or 'imagenet'}), {len(data.classes)} classes")


def clean_accuracy(features, labels) -> float:
    """How hard the task is: a logreg head's test accuracy on the true labels, before planting."""
    import featx

    return featx.fit_head(replace(features, y=np.asarray(labels, dtype=np.int64)), "logreg").metrics["test"]["accuracy"]


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
    parser.add_argument("--images", type=Path, help="class folders of photos: plant the problems in images")
    parser.add_argument("--backbone", default="EfficientNetB0", help="with --images")
    parser.add_argument("--weights", default=None, help="with --images: imagenet (default), none or a file")
    parser.add_argument("--image-size", type=int, default=None, help="with --images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the best and the median are shown")
    args = parser.parse_args()

    import featx
    from featx.features.vectors import load_features
    from featx.inspection.outliers import outlier_scores

    with tempfile.TemporaryDirectory() as tmp:
        case = (images_case if args.images else vectors_case)(args, Path(tmp))
        featx.inspect(load_features(case.cache).subset(np.arange(100)))  # warm up: imports count for the CLI
        seconds, cli_seconds = [], []
        for _ in range(args.repeat):  # the machine may be shared: the best of a few runs is the cost
            started = time.perf_counter()
            result = featx.inspect(load_features(case.cache))
            seconds.append(time.perf_counter() - started)
            started = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "featx", "inspect", str(case.cache), "--json"],
                                  capture_output=True, text=True, check=True)
            cli_seconds.append(time.perf_counter() - started)
            assert json.loads(done.stdout)["summary"]["images"] == len(result.features)

    paths = result.features.paths
    top = {paths[i.row] for i in result.label_issues[:len(case.flipped)]}
    found = {frozenset(d.paths) for d in result.duplicates if d.leak}
    outliers = {o.path for o in result.outliers[:len(case.other)]}
    ranked = {paths[i] for i in np.argsort(-outlier_scores(result.features))[:len(case.other)]}
    print(f"{case.about}; planted {len(case.flipped)} flipped labels, {len(case.pairs)} test images copied into "
          f"train, {len(case.other)} images of another kind; logreg test accuracy on the clean labels "
          f"{case.accuracy:.3f}")
    print(f"{'finding':<22} {'planted':>7} {'flagged':>7} {'recall':>7}   (recall among the top <planted> findings)")
    print(f"{'label issues':<22} {len(case.flipped):>7} {len(result.label_issues):>7} "
          f"{len(top & case.flipped) / max(len(case.flipped), 1):>7.3f}")
    print(f"{'near-duplicate leaks':<22} {len(case.pairs):>7} {sum(d.leak for d in result.duplicates):>7} "
          f"{sum(p in found for p in case.pairs) / max(len(case.pairs), 1):>7.3f}   (groups across splits)")
    print(f"{'outliers':<22} {len(case.other):>7} {len(result.outliers):>7} "
          f"{len(outliers & case.other) / max(len(case.other), 1):>7.3f}   (by score alone, whatever the "
          f"threshold: {len(ranked & case.other) / max(len(case.other), 1):.3f})")
    print(f"seconds, best / median of {args.repeat}: load_features + inspect {min(seconds):.2f} / "
          f"{np.median(seconds):.2f} ({', '.join(f'{k} {v:.2f}' for k, v in result.timings.items())} in the last);  "
          f"'featx inspect CACHE --json' in a new process {min(cli_seconds):.2f} / {np.median(cli_seconds):.2f}")


if __name__ == "__main__":
    main()
