"""The images and caches of ``benchmarks/quality.py``: Fashion-MNIST and scikit-learn's digits as
class folders, embedded once by featx with a real ImageNet backbone, and the draws of training
images taken from them in memory (a draw is a split column, so a head and a fine-tune read the
same cache and find the same image files).
"""

from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path

import numpy as np
from PIL import Image

FASHION = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
DEFAULT_BACKBONE = Path(__file__).resolve().parents[2] / "shared/models/efficientnet_lite0_imagenet_notop.keras"


def read_idx(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    """(N, 28, 28) uint8 images and (N,) labels of a Fashion-MNIST IDX pair."""
    with gzip.open(images) as f:
        pixels = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(labels) as f:
        targets = np.frombuffer(f.read(), np.uint8, offset=8)
    return pixels, targets.astype(np.int64)


def _pick(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    return np.concatenate([rng.permutation(np.flatnonzero(labels == c))[:per_class] for c in np.unique(labels)])


def write_fashion(root: Path, train_per_class: int, test_per_class: int, seed: int = 0) -> Path:
    """``root/train/<class>/*.png`` (``train_per_class`` each, the pool draws come from) and
    ``root/test/<class>/*.png`` (a fixed test set from the official test file); once."""
    if (root / "test").is_dir():
        return root
    rng = np.random.default_rng(seed)
    for split, stem, per_class in (("train", "train", train_per_class), ("test", "t10k", test_per_class)):
        pixels, labels = read_idx(FASHION / f"{stem}-images-idx3-ubyte.gz", FASHION / f"{stem}-labels-idx1-ubyte.gz")
        for row in _pick(labels, per_class, rng):
            folder = root / split / FASHION_CLASSES[labels[row]]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(pixels[row], mode="L").save(folder / f"{stem}{row:05d}.png")
    return root


def write_digits(root: Path) -> Path:
    """scikit-learn's 1,797 digits as featx's demo writes them (train/test, 32 px); once."""
    from featx.demo import write_digits_dataset

    return root if (root / "test").is_dir() else write_digits_dataset(root)


def draw(features, per_class: int, draw_seed: int, val_share: float = 0.2):
    """``features`` with a split column for one draw: ``per_class`` random training images of
    every class (of the cache's train images), a stratified ``val_share`` of them as "val" (at least
    one per class when ``per_class`` > 1), the cache's test images as "test", the rest unused."""
    rng = np.random.default_rng(1000 + draw_seed)
    split = np.full(len(features), "", dtype=object)
    pool = np.flatnonzero(features.split == "train")
    for c in np.unique(features.y[pool]):
        chosen = rng.permutation(pool[features.y[pool] == c])[:per_class]
        n_val = int(round(per_class * val_share)) if per_class > 1 else 0
        n_val = max(n_val, 1) if per_class > 1 else 0
        split[chosen[:len(chosen) - n_val]] = "train"
        split[chosen[len(chosen) - n_val:]] = "val"
    split[features.split == "test"] = "test"
    return dataclasses.replace(features, split=split)
