"""The documentation's pictures, made by featx itself on real features (not pasted screenshots).

    python benchmarks/docs_pictures.py [--backbone ../shared/models/efficientnet_lite0_imagenet_notop.keras]
                                       [--per-class 60] [--out docs/img]

Fashion-MNIST (Debian's dataset-fashion-mnist) as class folders with train/test splits, a few
problems planted (label flips, a copy across splits, foreign images) so the map has something to
ring; embedded with the real ImageNet backbone, then: `featx inspect`'s map (inspect-map.png), the
logreg head's confusion matrix on the test split (confusion.png), the keras head's training curves
(keras-curves.png) and the `featx compare` leaderboard as Markdown (leaderboard.md). Rerun it
when what these pictures show changes; it takes a few minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from search_real import SHARED, fashion  # the same Fashion-MNIST reader

CLASSES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")


def write_dataset(folder: Path, per_class: int, seed: int = 0) -> Path:
    """``per_class`` images per class (a quarter of them in test/), with planted problems."""
    images, labels = fashion(per_class * 10 * 3, seed)
    rng = np.random.default_rng(seed)
    counts = dict.fromkeys(range(10), 0)
    for i, (pixels, label) in enumerate(zip(images, labels)):
        if counts[int(label)] >= per_class:
            continue
        counts[int(label)] += 1
        split = "test" if counts[int(label)] % 4 == 0 else "train"
        if split == "train" and rng.random() < 0.03:  # a label flip
            label = (int(label) + 1 + rng.integers(9)) % 10
        path = folder / split / CLASSES[int(label)] / f"{i:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(path)
    source = next((folder / "train" / CLASSES[0]).iterdir())  # a copy across splits
    (folder / "test" / CLASSES[0] / f"copy-{source.name}").write_bytes(source.read_bytes())
    from sklearn.datasets import load_digits

    for j, digit in enumerate(load_digits().images[:3]):  # foreign images: handwritten digits
        pixels = Image.fromarray((digit * 16).clip(0, 255).astype(np.uint8)).resize((28, 28))
        pixels.save(folder / "train" / CLASSES[j] / f"digit-{j}.png")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default=str(SHARED))
    parser.add_argument("--per-class", type=int, default=60)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs" / "img")
    parser.add_argument("--work", type=Path, default=None)
    args = parser.parse_args()
    import featx
    from featx.heads.plots import plot_confusion, plot_history
    from featx.inspection import plot_map

    work = args.work or Path(tempfile.mkdtemp(prefix="featx-pictures-"))
    data = write_dataset(work / "fashion", args.per_class)
    args.out.mkdir(parents=True, exist_ok=True)
    feats = featx.embed(data, backbone=args.backbone, cache=work / "cache.h5")
    found = featx.inspect(feats)
    plot_map(found, args.out / "inspect-map.png")
    logreg = featx.fit_head(feats, "logreg")
    plot_confusion(featx.evaluate_head(logreg, feats), args.out / "confusion.png")
    keras_head = featx.fit_head(feats, "keras")
    plot_history(keras_head.history, args.out / "keras-curves.png", title="keras head training")
    rows = featx.compare_heads([feats], ["logreg", "svm", "sgd", "knn", "keras"])
    keys = [k for k in ("head", "accuracy", "macro_f1", "fit_seconds") if k in rows[0]]
    table = ["| " + " | ".join(keys) + " |", "|" + " --- |" * len(keys)]
    table += ["| " + " | ".join(f"{r[k]:.3f}" if isinstance(r[k], float) else str(r[k]) for k in keys) + " |"
              for r in rows]
    (args.out / "leaderboard.md").write_text("\n".join(table) + "\n")
    print(f"wrote {args.out}: inspect-map.png, confusion.png, keras-curves.png, leaderboard.md")
    print("\n".join(table))


if __name__ == "__main__":
    main()
