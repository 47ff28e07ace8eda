"""A small, real labelled image folder for a first run: scikit-learn's bundled handwritten digits."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image


def write_digits_dataset(folder: str | os.PathLike, *, test_fraction: float = 0.2, scale: int = 4, seed: int = 0) -> Path:
    """Write the 1,797 8×8 digit images as PNGs in ``train/<digit>/`` and ``test/<digit>/``.

    Needs no download (the digits ship with scikit-learn). Images are upscaled ``scale`` times
    with nearest-neighbour so they stay crisp. Returns the folder.
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    pixels = (digits.images * (255.0 / 16.0)).round().astype(np.uint8)
    indices = np.arange(len(pixels))
    train, test = train_test_split(indices, test_size=test_fraction, stratify=digits.target, random_state=seed)
    root = Path(folder)
    for split, rows in (("train", train), ("test", test)):
        for row in rows:
            target = root / split / str(digits.target[row])
            target.mkdir(parents=True, exist_ok=True)
            image = Image.fromarray(pixels[row], mode="L").resize((8 * scale, 8 * scale), Image.NEAREST)
            image.save(target / f"digit_{row:04d}.png")
    return root
