"""How fast are heads on cached vectors? A script that prints figures, not a test.

Part 1: fit time of every head on N × D synthetic cached vectors of K classes (default
10,000 × 2,048, 10 classes: the size of a ResNet50/Xception cache of a small dataset; ``--large``
adds 100,000 × 2,048), next to the estimate that decides the "may take long" warning, then
``compare_heads`` with the default heads end to end (what ``featx compare`` runs).

Part 2: a 10-epoch Keras-head experiment on cached vectors vs the classic frozen-backbone
``model.fit`` over the images for 10 epochs, on the same generated images (MobileNetV2,
random weights, 224 px). Both are measured; nothing is extrapolated.

    python benchmarks/heads.py                       # both parts
    python benchmarks/heads.py --skip-images         # part 1 only
    python benchmarks/heads.py --skip-images --large --heads logreg,svm,sgd,keras   # and at 100,000 x 2,048
    python benchmarks/heads.py --heads logreg,svm:C=1.0,svm:kernel=rbf,keras:batch_size=32 --skip-images
    python benchmarks/heads.py --heads logreg,keras --images 150
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # for tests.imagegen

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def synthetic_features(n: int, dim: int, n_classes: int, seed: int = 0):
    """Non-negative, overlapping class clusters, like ReLU-pooled CNN features."""
    from featx.features.vectors import Features
    from featx.options import EmbedOptions

    rng = np.random.default_rng(seed)
    y = rng.integers(0, n_classes, n)
    means = rng.normal(0.0, 0.1, (n_classes, dim))
    X = np.maximum(means[y] + rng.normal(0.0, 1.0, (n, dim)), 0).astype(np.float32)
    config = EmbedOptions("MobileNetV2", weights="none", image_size=224).resolve()
    return Features(
        X=X, y=y.astype(np.int64), classes=tuple(f"class{i}" for i in range(n_classes)),
        paths=np.asarray([f"img{i}.png" for i in range(n)], dtype=object),
        ids=np.asarray([f"{i:064x}" for i in range(n)], dtype=object), split=np.full(n, "", dtype=object),
        config=config.identity(), fingerprint=config.fingerprint, sources=config.sources(),
    )


def head_and_params(text: str) -> tuple[str, dict]:
    """``svm:C=1.0;kernel=linear`` → ("svm", {"C": 1.0, "kernel": "linear"})."""
    from featx.heads.params import parse_params

    name, _, params = text.partition(":")
    return name, parse_params([p for p in params.split(";") if p])


def fit_times(n: int, args) -> None:
    from featx.heads import fit_head, get_head_spec

    features = synthetic_features(n, args.dim, args.classes)
    train = int(n * 0.8)
    print(f"\n## fit_head on {n} x {args.dim} cached vectors, {args.classes} classes "
          f"(80/20 stratified hold-out, default parameters unless given)")
    print(f"{'head':<22} {'fit s':>8} {'total s':>8} {'estimate s':>10} {'test acc':>9}   "
          "(total = split + fit + train/test metrics)")
    for text in args.heads.split(","):
        name, params = head_and_params(text)
        estimate = get_head_spec(name).estimate_seconds(train, args.dim, args.classes, params)
        started = time.perf_counter()
        head = fit_head(features, name, note=lambda line: None, **params)
        total = time.perf_counter() - started
        extra = f"  epochs run: {head.estimator.n_iter_}" if name == "keras" else ""
        print(f"{text:<22} {head.fit_seconds:>8.2f} {total:>8.2f} {estimate:>10.1f} "
              f"{head.metrics['test']['accuracy']:>9.3f}{extra}", flush=True)


def compare_end_to_end(n: int, args) -> None:
    from featx.heads import compare_heads, list_heads

    features = synthetic_features(n, args.dim, args.classes)
    print(f"\n## compare_heads, default heads ({', '.join(list_heads())}), on {n} x {args.dim} vectors")
    started = time.perf_counter()
    rows = compare_heads([features], note=lambda line: print("  note:", line))
    took = time.perf_counter() - started
    print("  " + ", ".join(f"{r['head']} {r['accuracy']:.3f} ({r['fit_seconds']:.1f} s fit)" for r in rows))
    print(f"compare end to end: {took:.1f} s", flush=True)


def part1(args) -> None:
    fit_times(args.n, args)
    if not args.skip_compare:
        compare_end_to_end(args.n, args)
    if args.large:
        fit_times(100_000, args)


def load_pixels(paths, size: int) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(p).convert("RGB").resize((size, size), Image.BILINEAR), dtype=np.float32)
                     for p in paths])


def part2(args) -> None:
    import featx
    from featx.backend import import_keras
    from featx.heads import KerasHead
    from tests.imagegen import make_class_folder

    keras = import_keras("tensorflow")
    n_classes = 3
    per_class = args.images // n_classes
    with tempfile.TemporaryDirectory() as tmp:
        data = make_class_folder(Path(tmp) / "data", classes=[f"c{i}" for i in range(n_classes)],
                                 per_class=per_class, size=(96, 96))
        n = per_class * n_classes
        print(f"\n## Part 2: {n} generated images, {n_classes} classes, MobileNetV2 weights=None at 224 px, "
              f"{args.epochs} epochs, batch 32, Dense({args.units}) head")

        started = time.perf_counter()
        features = featx.embed(data, "MobileNetV2", weights="none", image_size=224, cache=Path(tmp) / ".featx")
        embed_s = time.perf_counter() - started
        print(f"featx embed (once, decode + backbone forward):        {embed_s:8.2f} s", flush=True)

        head = KerasHead(units=args.units, epochs=args.epochs, patience=args.epochs, random_state=0)
        started = time.perf_counter()
        head.fit(features.X, features.y)
        cached_s = time.perf_counter() - started
        print(f"Keras head, {head.n_iter_} epochs on cached vectors:         {cached_s:8.2f} s", flush=True)

        # The classic way: the frozen backbone inside the model, images in memory (decoded and
        # resized once, which favours it), model.fit for the same epochs and validation share.
        pixels = keras.applications.mobilenet_v2.preprocess_input(load_pixels(features.paths, 224))
        base = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(224, 224, 3),
                                              pooling="avg")
        base.trainable = False
        inputs = keras.Input((224, 224, 3))
        hidden = keras.layers.Dense(args.units, activation="relu")(base(inputs, training=False))
        outputs = keras.layers.Dense(n_classes, activation="softmax")(keras.layers.Dropout(0.5)(hidden))
        model = keras.Model(inputs, outputs)
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy",
                      metrics=["accuracy"])
        started = time.perf_counter()
        model.fit(pixels, features.y, epochs=args.epochs, batch_size=32, validation_split=0.1, verbose=0)
        classic_s = time.perf_counter() - started
        print(f"classic frozen-backbone model.fit, {args.epochs} epochs on images: {classic_s:8.2f} s", flush=True)

        print(f"\nper experiment: classic / cached = {classic_s / cached_s:.0f}x")
        print(f"first experiment incl. the one-time embed: classic / (embed + cached) = "
              f"{classic_s / (embed_s + cached_s):.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--heads", default="logreg,svm,sgd,knn,keras",
                        help="comma-separated heads, each optionally name:key=value;key=value")
    parser.add_argument("--large", action="store_true", help="also fit the heads on 100,000 vectors")
    parser.add_argument("--skip-compare", action="store_true")
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--units", type=int, default=256)
    parser.add_argument("--skip-images", action="store_true")
    parser.add_argument("--skip-vectors", action="store_true")
    args = parser.parse_args()
    print(f"featx heads benchmark on {os.cpu_count()} CPU cores, Python {sys.version.split()[0]}")
    if not args.skip_vectors:
        part1(args)
    if not args.skip_images:
        part2(args)


if __name__ == "__main__":
    main()
