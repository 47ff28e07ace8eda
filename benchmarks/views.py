"""Do cached augmented views (``featx embed --views K``) help each head? A script that prints figures.

The labelled set is real: scikit-learn's bundled handwritten digits (1,797 scans, 8x8, written as
32x32 PNGs; no download). ImageNet weights cannot be downloaded here, so by default the backbone
is a small CNN that this script trains on the digits 0-4 (a "pretrained" backbone that never saw
the task), and the transfer task is the digits 5-9: ``--per-class`` training images per class drawn
at random (``--repeats`` draws), every other image of 5-9 as the test set. For each draw it embeds
the plain vectors and K views, then ``compare_heads(..., views=True)`` fits every head with and
without the views on the same split and scores both on the same plain test vectors.

    python benchmarks/views.py                                    # 5, 20 and 100 per class, 5 draws, K=4
    python benchmarks/views.py --per-class 10 --repeats 3 --views 8 --augment crop,jitter
    python benchmarks/views.py --backbone MobileNetV2 --weights imagenet   # where the weights can be had

Flips are wrong for digits, so the default recipe here is crop,jitter (``--augment`` to change it).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

PRETRAIN_CLASSES = range(0, 5)
TASK_CLASSES = range(5, 10)
SIZE = 32


def write_digits(folder: Path) -> dict[int, list[Path]]:
    """Every digit as a 32x32 PNG, by class (written once)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    by_class: dict[int, list[Path]] = {c: [] for c in range(10)}
    for row, (image, label) in enumerate(zip(digits.images, digits.target)):
        path = folder / str(label) / f"digit_{row:04d}.png"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = (image * (255.0 / 16.0)).round().astype(np.uint8)
            Image.fromarray(pixels, mode="L").resize((SIZE, SIZE), Image.NEAREST).save(path)
        by_class[int(label)].append(path)
    return by_class


def pretrain_backbone(by_class: dict[int, list[Path]], path: Path, seed: int = 0) -> float:
    """A small CNN trained on the digits 0-4, saved without its classifier (a feature map out);
    returns its held-out accuracy on 0-4."""
    import keras

    from featx.data.images import load_image

    files = [(p, c) for c in PRETRAIN_CLASSES for p in by_class[c]]
    X = np.stack([load_image(p, (SIZE, SIZE)) for p, _ in files])
    y = np.asarray([c for _, c in files])
    order = np.random.default_rng(seed).permutation(len(y))
    X, y = X[order], y[order]
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Rescaling(1 / 255.0)(inputs)
    for filters in (32, 64):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu")(x)
        x = keras.layers.MaxPooling2D()(x)
    features = keras.layers.Conv2D(128, 3, padding="same", activation="relu")(x)
    backbone = keras.Model(inputs, features, name="digits_cnn")
    head = keras.layers.Dense(len(PRETRAIN_CLASSES), activation="softmax")(keras.layers.GlobalAveragePooling2D()(features))
    model = keras.Model(inputs, head)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    cut = int(0.8 * len(y))
    model.fit(X[:cut], y[:cut], epochs=15, batch_size=32, verbose=0)
    accuracy = float(model.evaluate(X[cut:], y[cut:], verbose=0)[1])
    backbone.save(path)
    return accuracy


def write_manifest(path: Path, by_class: dict[int, list[Path]], per_class: int, seed: int) -> None:
    """``per_class`` training images of each task class drawn with ``seed``; the rest is the test split."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "split"])
        for label in TASK_CLASSES:
            files = by_class[label]
            train = set(rng.choice(len(files), per_class, replace=False).tolist())
            for i, file in enumerate(files):
                writer.writerow([str(file), str(label), "train" if i in train else "test"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=None, help="Folder for images, backbone and caches (default: a temporary one).")
    parser.add_argument("--per-class", default="5,20,100", help="Training images per class, comma-separated.")
    parser.add_argument("--repeats", type=int, default=5, help="Random draws of the training images per size.")
    parser.add_argument("--views", type=int, default=4)
    parser.add_argument("--augment", default="crop,jitter")
    parser.add_argument("--heads", default="logreg,svm,sgd,knn,keras")
    parser.add_argument("--backbone", default=None, help="A featx backbone instead of the CNN pretrained on 0-4.")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--json", type=Path, default=None, help="Also write the rows here.")
    args = parser.parse_args()

    import featx
    from featx.heads import compare_heads

    work = args.work or Path(tempfile.mkdtemp(prefix="featx-views-"))
    work.mkdir(parents=True, exist_ok=True)
    by_class = write_digits(work / "digits")
    backbone, weights = args.backbone, args.weights
    if backbone is None:
        backbone = str(work / "digits_cnn.keras")
        if not Path(backbone).exists():
            started = time.perf_counter()
            accuracy = pretrain_backbone(by_class, Path(backbone))
            print(f"backbone: CNN trained on digits 0-4 (held-out accuracy {accuracy:.3f}, "
                  f"{time.perf_counter() - started:.0f} s) -> {backbone}")
    heads = args.heads.split(",")
    rows, timings = [], []
    for per_class in (int(n) for n in args.per_class.split(",")):
        for repeat in range(args.repeats):
            manifest = work / f"task-{per_class}-{repeat}.csv"
            write_manifest(manifest, by_class, per_class, seed=repeat)
            started = time.perf_counter()
            features = featx.embed(manifest, backbone, weights=weights, image_size=SIZE, views=args.views,
                                   augment=args.augment, cache=work / "cache")
            report = features.report
            timings.append((report.seconds, report.views.seconds if report.views else 0.0,
                            report.embedded, report.views.embedded if report.views else 0))
            for row in compare_heads([features.cache_path], heads, views=True, augment=args.augment, seed=repeat):
                rows.append({"per_class": per_class, "repeat": repeat, "head": row["head"], "views": row["views"],
                             "accuracy": row["accuracy"], "macro_f1": row["macro_f1"],
                             "fit_seconds": row["fit_seconds"], "test_n": row["n"]})
            print(f"  {per_class}/class draw {repeat}: embedded and compared in {time.perf_counter() - started:.1f} s", flush=True)

    print(f"\nviews: {args.views} per training image ({args.augment}); backbone {Path(backbone).name}; "
          f"{args.repeats} draws per size; test = every other image of the digits 5-9 (plain vectors)")
    print(f"{'train/class':>11} {'head':<7} {'plain acc':>16} {'with views':>16} {'gain':>14} {'wins':>5} "
          f"{'fit s plain / views':>20}")
    for per_class in sorted({r["per_class"] for r in rows}):
        for head in heads:
            mine = [r for r in rows if r["per_class"] == per_class and r["head"] == head]
            plain = np.asarray([r["accuracy"] for r in sorted(mine, key=lambda r: r["repeat"]) if r["views"] == 0])
            viewed = np.asarray([r["accuracy"] for r in sorted(mine, key=lambda r: r["repeat"]) if r["views"] > 0])
            gain = viewed - plain
            fit_plain = np.mean([r["fit_seconds"] for r in mine if r["views"] == 0])
            fit_views = np.mean([r["fit_seconds"] for r in mine if r["views"] > 0])
            print(f"{per_class:>11} {head:<7} {plain.mean():>9.3f}±{plain.std():.3f} {viewed.mean():>9.3f}±"
                  f"{viewed.std():.3f} {gain.mean():>+7.3f}±{gain.std():.3f} {int((gain > 0).sum()):>2}/{len(gain)} "
                  f"{fit_plain:>9.3f} / {fit_views:<8.3f}")
    for what, seconds, count in (("plain image", 0, 2), ("view", 1, 3)):
        done = sum(t[count] for t in timings)
        if done:  # runs that embedded something (a rerun reuses the cache)
            print(f"embedding: {1e3 * sum(t[seconds] for t in timings if t[count]) / done:.1f} ms per {what} "
                  "(decoding, augmenting and the backbone; start-up included)")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
