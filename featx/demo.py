"""A small, real labelled image folder for a first run: scikit-learn's bundled handwritten digits."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from featx.backbones.applications import DEFAULT_BACKBONE
from featx.features.vectors import Features

if TYPE_CHECKING:
    from featx.heads import Head


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


@dataclass
class DemoRun:
    """What :func:`run_demo` did: the features, the weights it could use, the fitted head."""

    folder: Path
    wrote_images: bool
    weights: str  # "imagenet", or "none" when ImageNet weights could not be had
    offline_reason: str  # why ImageNet weights were unavailable ("" when they were used)
    features: Features
    head: Head


def run_demo(
    folder: str | os.PathLike = "featx-demo",
    backbone: str = DEFAULT_BACKBONE,
    *,
    cache: str | os.PathLike | None = None,
    image_size: int | None = None,
    progress=None,
) -> DemoRun:
    """The whole pipeline on the digits: write them (once), embed, fit and save a logreg head.

    ImageNet weights are used when they can be downloaded; offline the demo continues with random
    weights (``weights == "none"``), whose features only heads that standardise them learn from.
    """
    from featx.api import embed
    from featx.errors import WeightsUnavailableError
    from featx.heads import fit_head

    folder = Path(folder)
    wrote = not (folder / "train").is_dir()
    if wrote:
        write_digits_dataset(folder)
    weights, reason = "imagenet", ""
    try:
        features = embed(folder, backbone, weights=weights, image_size=image_size, cache=cache, progress=progress)
    except WeightsUnavailableError as exc:
        weights, reason = "none", exc.reason
        features = embed(folder, backbone, weights=weights, image_size=image_size, cache=cache, progress=progress)
    head = fit_head(features, head="logreg")
    head.save()
    return DemoRun(folder, wrote, weights, reason, features, head)
