"""Deterministic image files for tests: single images in any Pillow mode, and dataset folders.

Sizes here are Pillow's (width, height); featx's own `size` arguments are (height, width).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

_counter = itertools.count(1)


def pixels(size: tuple[int, int] = (48, 40), seed: int = 0) -> np.ndarray:
    """uint8 RGB array of shape (height, width, 3): smooth gradients plus seeded noise."""
    width, height = size
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / max(width - 1, 1), yy / max(height - 1, 1),
                     (xx + yy) / max(width + height - 2, 1)], axis=-1) * 200.0
    noise = rng.integers(0, 56, size=(height, width, 3))
    return (base + noise).clip(0, 255).astype(np.uint8)


def make_pil_image(size: tuple[int, int] = (48, 40), mode: str = "RGB", seed: int = 0):
    """A PIL image of `mode` and (width, height) `size` with deterministic content.

    16-bit and 32-bit modes ("I;16", "I;16B", "I", "F") span the full 16-bit range (v * 257);
    modes with alpha get a seeded random alpha channel.
    """
    rgb = pixels(size, seed)
    wide_dtypes = {"I;16": "<u2", "I;16B": ">u2", "I": "=i4", "F": "=f4"}
    if mode in wide_dtypes:
        wide = (rgb[..., 0].astype(np.uint32) * 257).astype(wide_dtypes[mode])
        return Image.frombytes(mode, size, wide.tobytes())
    image = Image.fromarray(rgb)
    colour = {"RGBA": "RGB", "LA": "L", "PA": "P"}.get(mode)
    if colour:
        alpha = np.random.default_rng(seed + 1).integers(0, 256, size=rgb.shape[:2], dtype=np.uint8)
        image = image.convert(colour).convert(mode)
        image.putalpha(Image.fromarray(alpha))
        return image
    if mode == "P":
        return image.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
    return image.convert(mode)


def write_image(path: str | Path, size: tuple[int, int] = (48, 40), mode: str = "RGB",
                fmt: str | None = None, seed: int = 0) -> Path:
    """Write a deterministic image of (width, height) `size`; format from the suffix or `fmt`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    make_pil_image(size, mode, seed).save(path, format=fmt)
    return path


def make_class_folder(root: str | Path, classes: Sequence[str] = ("cat", "dog"),
                      per_class: int = 3, size: tuple[int, int] = (48, 40),
                      splits: Sequence[str] | None = None, ext: str = ".png") -> Path:
    """Write root/<class>/<class>_<i><ext>, or root/<split>/<class>/... when `splits` is given.

    Seeds come from a process-wide counter, so no two files written by this helper have the
    same bytes. Returns `root`.
    """
    root = Path(root)
    for split in splits or [None]:
        folder = root / split if split else root
        for name in classes:
            for i in range(per_class):
                write_image(folder / name / f"{name}_{i}{ext}", size=size, seed=next(_counter))
    root.mkdir(parents=True, exist_ok=True)
    return root
