"""A Hugging Face snapshot's image pipeline, as its ``preprocessor_config.json`` declares it.

transformers' PIL ("slow") image processors resize uint8 pixels with Pillow (``size``: the shortest
edge, or height and width; ``resample``: Pillow's filter number, which antialiases when shrinking),
then centre-crop to ``crop_size`` (padding with zeros an image smaller than the crop), then rescale
and normalise. featx does the same steps with the same Pillow calls, so the pixels agree, not merely
resemble. The geometry is recorded as the configuration's ``resize`` (``pil:bicubic:short=256:crop=224x224``,
``pil:bilinear:224x224``), so it is in the fingerprint and shown with the cache; the rescale and
normalisation become the configuration's ``preprocessing`` (Keras layers, in every saved model).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace

import numpy as np
from PIL import Image

from featx.data.images import DEFAULT_MAX_PIXELS, decode_rgb, load_image
from featx.errors import OptionError

PIL_FILTERS = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic", 4: "box", 5: "hamming"}
_FILTER_NUMBERS = {name: number for number, name in PIL_FILTERS.items()}
PREFIX = "pil:"

# transformers' processor classes featx follows: their defaults for what a preprocessor_config.json leaves out
_BIT = dict(resample=3, size={"shortest_edge": 224}, do_center_crop=True, crop_size={"height": 224, "width": 224},
            image_mean=[0.48145466, 0.4578275, 0.40821073], image_std=[0.26862954, 0.26130258, 0.27577711],
            square=False)
_VIT = dict(resample=2, size={"height": 224, "width": 224}, do_center_crop=False, image_mean=[0.5] * 3,
            image_std=[0.5] * 3, square=True)
_DINOV3 = {**_VIT, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
_SIGLIP = {**_VIT, "resample": 3, "square": False}
PROCESSOR_DEFAULTS = {"BitImageProcessor": _BIT, "ViTImageProcessor": _VIT, "DINOv3ViTImageProcessor": _DINOV3,
                      "CLIPImageProcessor": _BIT, "SiglipImageProcessor": _SIGLIP}
MODEL_PROCESSORS = {"dinov2": "BitImageProcessor", "dinov2_with_registers": "BitImageProcessor",
                    "vit": "ViTImageProcessor", "dinov3_vit": "DINOv3ViTImageProcessor",
                    "clip": "CLIPImageProcessor", "clip_vision_model": "CLIPImageProcessor",
                    "siglip": "SiglipImageProcessor", "siglip_vision_model": "SiglipImageProcessor"}


@dataclass(frozen=True)
class ImagePipeline:
    """Resize (to ``short`` pixels on the shortest edge, or to ``height`` x ``width``) with a Pillow
    filter, then an optional centre crop: what a transformers PIL image processor does before rescaling."""

    filter: str  # a value of PIL_FILTERS
    short: int | None = None
    height: int | None = None
    width: int | None = None
    crop: tuple[int, int] | None = None  # (height, width)

    @property
    def spec(self) -> str:
        """The configuration's ``resize`` string: ``pil:<filter>:<short=N | HxW | none>[:crop=HxW]``."""
        size = f"short={self.short}" if self.short else f"{self.height}x{self.width}" if self.height else "none"
        return f"{PREFIX}{self.filter}:{size}" + (f":crop={self.crop[0]}x{self.crop[1]}" if self.crop else "")

    def describe(self) -> str:
        """In words: ``Pillow bicubic: shortest edge 256, centre crop 224x224``."""
        size = (f"shortest edge {self.short}" if self.short else f"{self.height}x{self.width}" if self.height
                else "no resize")
        return f"Pillow {self.filter}: {size}" + (f", centre crop {self.crop[0]}x{self.crop[1]}" if self.crop else "")

    @classmethod
    def from_spec(cls, spec: str) -> ImagePipeline:
        """The pipeline a ``resize`` string names (the inverse of :attr:`spec`)."""
        try:
            parts = spec.removeprefix(PREFIX).split(":")
            filter_name, size = parts[0], parts[1]
            if filter_name not in _FILTER_NUMBERS or len(parts) > 3 or not spec.startswith(PREFIX):
                raise ValueError
            crop = _pair(parts[2].removeprefix("crop=")) if len(parts) == 3 and parts[2].startswith("crop=") else None
            if len(parts) == 3 and crop is None:
                raise ValueError
            if size.startswith("short="):
                return cls(filter_name, short=int(size[6:]), crop=crop)
            height, width = _pair(size) if size != "none" else (None, None)
            return cls(filter_name, height=height, width=width, crop=crop)
        except (ValueError, IndexError):
            raise OptionError(f"{{param}} {spec!r} is not an image pipeline (pil:<filter>:<short=N|HxW|none>"
                              "[:crop=HxW]).", param="resize") from None

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """The (height, width) the resize gives an image of ``height`` x ``width`` (transformers'
        get_resize_output_image_size: the long edge is truncated, not rounded)."""
        if self.short:
            short, long = (width, height) if width <= height else (height, width)
            new_long = int(self.short * long / short)
            return (new_long, self.short) if width <= height else (self.short, new_long)
        if self.height:
            return self.height, self.width
        return height, width

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """The size every image comes out at (the crop, else a fixed resize), or None if it varies."""
        return self.crop or ((self.height, self.width) if self.height else None)

    def scaled(self, size: int, native: int) -> ImagePipeline:
        """The same pipeline for a model run at ``size`` pixels instead of ``native`` (``--image-size``):
        every length scaled by size/native."""
        if size == native:
            return self

        def scale(value: int | None) -> int | None:
            return None if value is None else max(1, round(value * size / native))

        crop = (scale(self.crop[0]), scale(self.crop[1])) if self.crop else None
        return replace(self, short=scale(self.short), height=scale(self.height), width=scale(self.width), crop=crop)

    def apply(self, image: np.ndarray) -> np.ndarray:
        """uint8 (height, width, 3) pixels resized and cropped as the processor does, as float32 0-255."""
        height, width = image.shape[:2]
        new_height, new_width = self.output_size(height, width)
        if (new_height, new_width) != (height, width):
            resized = Image.fromarray(image).resize((new_width, new_height), resample=_FILTER_NUMBERS[self.filter])
            image = np.asarray(resized)
        if self.crop:
            image = center_crop(image, self.crop)
        return image.astype(np.float32)


def _pair(text: str) -> tuple[int, int]:
    height, _, width = text.partition("x")
    return int(height), int(width)


def center_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """transformers' center_crop: the centre ``size`` of the image, which is first padded with zeros
    (on both sides, the odd pixel before) where it is smaller than ``size``."""
    crop_h, crop_w = size
    in_h, in_w = image.shape[:2]
    top, left = (in_h - crop_h) // 2, (in_w - crop_w) // 2
    if top >= 0 and left >= 0:
        return image[top : top + crop_h, left : left + crop_w]
    new_h, new_w = max(crop_h, in_h), max(crop_w, in_w)
    padded = np.zeros((new_h, new_w, *image.shape[2:]), image.dtype)
    pad_top, pad_left = -(-(new_h - in_h) // 2), -(-(new_w - in_w) // 2)  # ceil
    padded[pad_top : pad_top + in_h, pad_left : pad_left + in_w] = image
    top, left = top + pad_top, left + pad_left
    return padded[max(0, top) : min(new_h, top + crop_h), max(0, left) : min(new_w, left + crop_w)]


def describe_resize(resize: str, size: int) -> str:
    """How a configuration's ``resize`` brings images to ``size`` pixels, in words."""
    if is_pipeline(resize):
        return ImagePipeline.from_spec(resize).describe() + " (the snapshot's preprocessor_config.json)"
    return f"{resize} to {size}x{size}, bilinear (Keras' Resizing)"


def is_pipeline(resize: str) -> bool:
    """Whether a configuration's ``resize`` is a snapshot's pipeline (else stretch, crop or pad)."""
    return str(resize).startswith(PREFIX)


def load_model_input(source: str | os.PathLike | bytes, size: int, resize: str,
                     max_pixels: int = DEFAULT_MAX_PIXELS, *, jpeg_draft: bool = False) -> np.ndarray:
    """A file (or its bytes) as the (size, size, 3) float32 0-255 input of a configuration: through its
    snapshot's pipeline, or :func:`featx.data.images.load_image` (stretch, crop or pad). Never drafted
    for a pipeline: Pillow's JPEG draft would move its pixels beyond a rounding step."""
    if not is_pipeline(resize):
        return load_image(source, (size, size), resize, max_pixels, jpeg_draft=jpeg_draft)
    return ImagePipeline.from_spec(resize).apply(decode_rgb(source, max_pixels))


def processor_pipeline(processor: dict, model_type: str) -> tuple[ImagePipeline | None, tuple, tuple]:
    """From a ``preprocessor_config.json``: its pipeline (None when it does not resize to one fixed
    size) and the mean and std on 0-1 pixels of what it feeds the model after rescaling and normalising."""
    kind = str(processor.get("image_processor_type") or processor.get("feature_extractor_type") or "")
    kind = kind.removesuffix("Fast").removesuffix("Pil").replace("FeatureExtractor", "ImageProcessor")
    defaults = PROCESSOR_DEFAULTS.get(kind) or PROCESSOR_DEFAULTS[MODEL_PROCESSORS.get(model_type, "ViTImageProcessor")]
    value = {**defaults, **{k: v for k, v in processor.items() if v is not None}}
    resample = value["resample"]
    if resample not in PIL_FILTERS:
        raise _declares(f"resample {resample!r} (one of Pillow's filter numbers 0-5 is needed)")
    pipeline = ImagePipeline(PIL_FILTERS[resample])
    if value.get("do_resize", True):
        size = _size_dict(value["size"], defaults["square"])
        if "longest_edge" in size or "max_height" in size:  # not followed: stretched to the declared size
            return None, *_normalisation(value)
        pipeline = replace(pipeline, short=size.get("shortest_edge"), height=size.get("height"),
                           width=size.get("width"))
    if value.get("do_center_crop", False):
        pipeline = replace(pipeline, crop=_pair_of(_size_dict(value["crop_size"], True)))
    if pipeline.fixed_size is None or pipeline.fixed_size[0] != pipeline.fixed_size[1]:
        pipeline = None
    return pipeline, *_normalisation(value)


def _normalisation(value: dict) -> tuple[tuple, tuple]:
    """The processor's rescale and normalisation as mean and std on 0-1 pixels."""
    factor = value.get("rescale_factor", 1 / 255) if value.get("do_rescale", True) else 1.0
    if not _number(factor) or factor <= 0:
        raise _declares(f"rescale_factor {factor!r:.60} (a number above 0 is needed)")
    if value.get("do_normalize", True):
        mean, std = _three(value["image_mean"]), _three(value["image_std"])
    else:
        mean, std = (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)
    if abs(factor * 255 - 1) < 1e-9 or not all(_number(v) for v in mean + std):
        return mean, std  # nonsense is refused by the snapshot's checks, which name the key
    # (x * factor - mean) / std on 0-255 pixels is (x / 255 - mean') / std' with both divided by 255 * factor
    return tuple(m / (255 * factor) for m in mean), tuple(s / (255 * factor) for s in std)


def _size_dict(size, square: bool) -> dict:
    if isinstance(size, int) and not isinstance(size, bool):
        return {"height": size, "width": size} if square else {"shortest_edge": size}
    if isinstance(size, (list, tuple)) and len(size) == 2:
        return {"height": size[0], "width": size[1]}
    if isinstance(size, dict):
        return {k: v for k, v in size.items() if v is not None}
    raise _declares(f"size {size!r:.60}")


def _pair_of(size: dict) -> tuple[int, int]:
    if "height" not in size or "width" not in size:
        raise _declares(f"crop_size {size!r:.60} (height and width are needed)")
    return int(size["height"]), int(size["width"])


def _three(values) -> tuple:
    """A processor's per-channel list (one number stands for all three)."""
    if _number(values):
        return (float(values),) * 3
    return tuple(values) if isinstance(values, (list, tuple)) else (values,)


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _declares(what: str) -> OptionError:
    return OptionError(f"{{param}}: the snapshot's preprocessor_config.json declares {what}; fix it or use another "
                       "snapshot.", param="backbone")
