"""Augmented views of an image: the registry of augmentations and the recipe that names them.

A view is the model input of an image (already decoded and resized to the backbone's input size,
float32 RGB 0-255) transformed by every augmentation of a :class:`ViewRecipe`, in registry order,
with random draws seeded by the view's id alone (the image's content id, the recipe, the view
number): view ``k`` of an image is the same pixels on any machine, in any batch and run, under any
backbone. That is what lets a views cache grow with new images and new views without recomputing
the old ones. Fine-tuning augments its training batches with the same :func:`augment_image`, drawing
from its own seeded generator. Nothing here imports Keras.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from featx.config import fingerprint_of
from featx.data.images import resize_image
from featx.errors import OptionError, OptionTypeError

Augmentation = Callable[[np.ndarray, np.random.Generator], np.ndarray]

CROP_SCALE = (0.6, 1.0)  # share of the image's area a crop keeps
CROP_RATIO = (3 / 4, 4 / 3)  # its aspect ratio (log-uniform)
JITTER = 0.1  # brightness, contrast and saturation each move by up to this fraction
MAX_VIEWS = 64  # views per image; beyond a few, more of them add compute, not information


def _flip(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror left-right, half of the time."""
    return pixels[:, ::-1] if rng.random() < 0.5 else pixels


def _vflip(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Mirror top-bottom, half of the time (aerial, microscopy, medical slides: no 'up')."""
    return pixels[::-1] if rng.random() < 0.5 else pixels


def _crop(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random crop of 60-100 % of the area, aspect 3:4 to 4:3, resized back (RandomResizedCrop)."""
    height, width = pixels.shape[:2]
    area = height * width * rng.uniform(*CROP_SCALE)
    ratio = np.exp(rng.uniform(*np.log(CROP_RATIO)))
    crop_h = int(np.clip(round(np.sqrt(area / ratio)), 1, height))
    crop_w = int(np.clip(round(np.sqrt(area * ratio)), 1, width))
    top = int(rng.integers(0, height - crop_h + 1))
    left = int(rng.integers(0, width - crop_w + 1))
    return resize_image(pixels[top : top + crop_h, left : left + crop_w], (height, width))


def _jitter(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Brightness, contrast and saturation, each scaled by a factor within 1 +/- 10 %."""
    brightness, contrast, saturation = rng.uniform(1 - JITTER, 1 + JITTER, size=3)
    out = pixels * np.float32(brightness)
    grey = out @ np.asarray([0.299, 0.587, 0.114], np.float32)
    out = grey[..., None] + np.float32(saturation) * (out - grey[..., None])
    mean = np.float32(grey.mean())
    out = mean + np.float32(contrast) * (out - mean)
    return np.clip(out, 0, 255, out=out)


# One entry per augmentation; a recipe applies its names in this order.
AUGMENTATIONS: dict[str, Augmentation] = {"flip": _flip, "vflip": _vflip, "crop": _crop, "jitter": _jitter}
DEFAULT_AUGMENT = "flip,crop,jitter"
FINE_TUNE_AUGMENT = DEFAULT_AUGMENT  # fine-tuning's default (docs/finetune.md: with jitter, chosen on real features)
RECIPE_VERSION = 1  # bump when an augmentation's arithmetic changes: old views then no longer match


@dataclass(frozen=True)
class ViewRecipe:
    """``count`` augmented views per training image, made by the augmentations ``augment`` names.

    ``augment`` is a comma-separated list of :data:`AUGMENTATIONS` names (``"flip,crop,jitter"``);
    flips are wrong for digits and text, so ``"crop,jitter"`` suits those.
    """

    count: int = 0
    augment: str = DEFAULT_AUGMENT

    def __post_init__(self) -> None:
        if isinstance(self.count, bool) or not isinstance(self.count, int) or not 0 <= self.count <= MAX_VIEWS:
            raise OptionError(f"{{param}} must be a number of views per image from 0 to {MAX_VIEWS}; got "
                              f"{self.count!r}.", param="views")
        object.__setattr__(self, "augment", ",".join(self.names))

    @property
    def names(self) -> tuple[str, ...]:
        """The augmentations, in registry order (so ``"jitter,crop"`` is the recipe ``"crop,jitter"``)."""
        return _recipe_names(self.augment, allow_none=False)

    def identity(self) -> dict[str, object]:
        """What changes the pixels of a view (not how many views there are)."""
        return {"augment": list(self.names), "version": RECIPE_VERSION}

    @property
    def key(self) -> str:
        """The fingerprint of what the recipe does to pixels. With an image's content id and a view
        number it seeds that view: the same pixels whatever the backbone that embeds them."""
        return fingerprint_of(self.identity())

    def view_id(self, content_id: bytes, view: int) -> bytes:
        """The id of view ``view`` of the image with ``content_id`` under this recipe."""
        return view_id(content_id, self.key, view)

    def config(self, plain_fingerprint: str) -> dict[str, object]:
        """The configuration of the views of a cache whose plain vectors have ``plain_fingerprint``:
        what a views cache stores as its ``config``, and hashes into its fingerprint."""
        return {"plain": plain_fingerprint, **self.identity()}

    def fingerprint(self, plain_fingerprint: str) -> str:
        """The fingerprint of those views (never the plain vectors': theirs does not change)."""
        return fingerprint_of(self.config(plain_fingerprint))


def view_id(content_id: bytes, recipe_key: str, view: int) -> bytes:
    """The id of view ``view`` of the image with ``content_id`` under the recipe whose
    :attr:`ViewRecipe.key` is ``recipe_key`` (64 hex digits, like a content id)."""
    return hashlib.sha256(b"%s:%s:%d" % (content_id, recipe_key.encode(), view)).hexdigest().encode()


def make_view(pixels: np.ndarray, recipe: ViewRecipe, seed_id: bytes) -> np.ndarray:
    """One view of ``pixels`` (H, W, 3 float32), its random draws seeded by ``seed_id`` (its view id)."""
    rng = np.random.default_rng(int.from_bytes(bytes.fromhex(seed_id.decode())[:8], "little"))
    return np.ascontiguousarray(augment_image(pixels, recipe.augment, rng), dtype=np.float32)


def augment_image(pixels: np.ndarray, augment: str, rng: np.random.Generator) -> np.ndarray:
    """``pixels`` (H, W, 3 float32) through every augmentation the recipe ``augment`` names, in
    registry order, drawing from ``rng``; ``""`` leaves them as they are. The one place augmentations
    are applied, so cached views and fine-tuning batches are augmented alike."""
    for name in _recipe_names(augment, allow_none=True):
        pixels = AUGMENTATIONS[name](pixels, rng)
    return pixels


def _recipe_names(augment: str, *, allow_none: bool) -> tuple[str, ...]:
    """The augmentations ``augment`` names, in registry order; unknown names are refused, and so is
    an empty recipe unless ``allow_none`` (then only ``""`` itself, meaning no augmentation)."""
    if not isinstance(augment, str):
        raise OptionTypeError(f"{{param}} must be a comma-separated string of augmentations; got "
                              f"{augment!r:.60}.", param="augment")
    if allow_none and augment == "":
        return ()
    names = {name.strip() for name in augment.split(",") if name.strip()}
    unknown = sorted(names - AUGMENTATIONS.keys())
    if unknown or not names:
        raise OptionError(f"{{param}} must name one or more of {', '.join(AUGMENTATIONS)} (comma-separated); "
                          f"got {augment!r}.", param="augment")
    return tuple(name for name in AUGMENTATIONS if name in names)
