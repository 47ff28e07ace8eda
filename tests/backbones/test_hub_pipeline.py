"""A Hugging Face snapshot's images are prepared as its preprocessor_config.json says, pixel for pixel
as transformers' PIL image processors prepare them: photos of several sizes and aspect ratios, some
smaller than the crop (padded), through the processor classes DINOv2 and ViT snapshots name."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from PIL import Image

from featx.backbones.hub_pipeline import ImagePipeline, center_crop, load_model_input, processor_pipeline
from featx.errors import OptionError
from tests.imagegen import write_image

needs_transformers = pytest.mark.skipif(importlib.util.find_spec("transformers") is None,
                                        reason="the reference pixels need transformers (featx[test])")
SIZES = [(45, 30), (30, 45), (37, 37), (20, 14), (14, 20), (90, 25), (28, 28), (33, 61)]  # (width, height)
PROCESSORS = {  # as the snapshots write them, at sizes small enough for tests
    "dinov2": {"image_processor_type": "BitImageProcessor", "size": {"shortest_edge": 32}, "resample": 3,
               "do_center_crop": True, "crop_size": {"height": 28, "width": 28}, "do_rescale": True,
               "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.485, 0.456, 0.406],
               "image_std": [0.229, 0.224, 0.225], "do_convert_rgb": True},
    "vit": {"image_processor_type": "ViTImageProcessor", "size": {"height": 28, "width": 28}, "resample": 2,
            "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]},
    "old-vit": {"feature_extractor_type": "ViTFeatureExtractor", "size": 28, "resample": 2},  # int size: square
    "lanczos-no-crop-size": {"image_processor_type": "BitImageProcessor", "size": 30, "resample": 1,
                             "crop_size": 24, "do_normalize": False, "rescale_factor": 0.5 / 255},
    "crop-only": {"image_processor_type": "BitImageProcessor", "do_resize": False, "crop_size": 28},  # pads small ones
    # CLIP and SigLIP snapshots: what the file leaves out (bicubic, CLIP's crop and mean/std) is the class's default
    "clip": {"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 32},
             "crop_size": {"height": 28, "width": 28}},
    "siglip": {"image_processor_type": "SiglipImageProcessor", "size": {"height": 28, "width": 28}},
}
MODEL_TYPES = {"dinov2": "dinov2", "vit": "vit", "old-vit": "vit", "lanczos-no-crop-size": "dinov2", "crop-only": "dinov2",
               "clip": "clip", "siglip": "siglip"}


def photos(folder, seed: int = 0) -> list:
    return [write_image(folder / f"{w}x{h}.png", size=(w, h), seed=seed + i) for i, (w, h) in enumerate(SIZES)]


def transformers_pixels(processor: dict, paths) -> np.ndarray:
    """transformers' own pixel_values (PIL backend), un-normalised back to 0-1 pixels, channels last."""
    from transformers import AutoImageProcessor

    folder = paths[0].parent / "processor"
    folder.mkdir(exist_ok=True)
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    image_processor = AutoImageProcessor.from_pretrained(str(folder), backend="pil")
    values = np.stack([image_processor(images=Image.open(p), return_tensors="np")["pixel_values"][0] for p in paths])
    return values.transpose(0, 2, 3, 1)


@needs_transformers
@pytest.mark.parametrize("kind", list(PROCESSORS))
def test_pixels_equal_transformers_pil_processor(tmp_path, kind):
    paths = photos(tmp_path)
    pipeline, mean, std = processor_pipeline(PROCESSORS[kind], MODEL_TYPES[kind])
    ours = np.stack([load_model_input(p, pipeline.fixed_size[0], pipeline.spec) for p in paths])
    assert ours.shape == (len(paths), *pipeline.fixed_size, 3) and ours.dtype == np.float32
    normalised = (ours / 255 - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    reference = transformers_pixels(PROCESSORS[kind], paths)
    # as 0-1 pixels: the processed arrays within 1/255 (they are equal: the same Pillow calls)
    assert np.abs((normalised - reference) * np.asarray(std)).max() <= 1 / 255 / 100, kind
    if kind == "crop-only":  # the 20x14 photo, smaller than the crop, was padded with zeros
        assert (ours[3, :7] == 0).all() and (ours[3, 7:21, 4:24] > 0).any()


def test_the_pipeline_a_processor_declares():
    dinov2 = processor_pipeline(PROCESSORS["dinov2"], "dinov2")
    assert dinov2[0].spec == "pil:bicubic:short=32:crop=28x28" and dinov2[1:] == ((0.485, 0.456, 0.406),
                                                                                  (0.229, 0.224, 0.225))
    assert processor_pipeline(PROCESSORS["vit"], "vit")[0].spec == "pil:bilinear:28x28"
    assert processor_pipeline(PROCESSORS["old-vit"], "vit")[0].spec == "pil:bilinear:28x28"
    # what a processor leaves out is its class's default: Bit resizes bicubic, ViT bilinear, ...
    assert processor_pipeline({"size": {"shortest_edge": 64}}, "dinov2_with_registers")[0].spec == (
        "pil:bicubic:short=64:crop=224x224")
    # ... and a rescale other than 1/255, or none, moves the normalisation: (x * f - m) / s
    assert processor_pipeline({"do_rescale": False, "image_mean": [127.5] * 3, "image_std": [127.5] * 3}, "vit")[1:] \
        == ((0.5,) * 3, (0.5,) * 3)
    assert processor_pipeline({"size": {"shortest_edge": 64}, "do_center_crop": False}, "vit")[0] is None  # sizes vary


def test_a_pipeline_is_a_resize_string_and_back():
    for spec in ("pil:bicubic:short=256:crop=224x224", "pil:bilinear:224x224", "pil:lanczos:none:crop=32x32"):
        assert ImagePipeline.from_spec(spec).spec == spec
    assert ImagePipeline.from_spec("pil:bicubic:short=256:crop=224x224").scaled(448, 224).spec == (
        "pil:bicubic:short=512:crop=448x448")
    for bad in ("pil:cubic:224x224", "pil:bilinear", "pil:bilinear:224x224:zoom=2", "pil:bilinear:axb"):
        with pytest.raises(OptionError, match="is not an image pipeline"):
            ImagePipeline.from_spec(bad)


def test_the_long_edge_is_truncated_as_transformers_truncates():
    pipeline = ImagePipeline("bicubic", short=256)
    assert pipeline.output_size(300, 451) == (256, 384)  # 256 * 451 / 300 = 384.85
    assert pipeline.output_size(741, 500) == (379, 256)
    assert pipeline.output_size(256, 256) == (256, 256)


def test_the_centre_crop_pads_a_small_image_as_transformers_does():
    image = np.arange(3 * 5, dtype=np.uint8).reshape(3, 5, 1) + 1
    cropped = center_crop(image, (6, 4))  # taller than the image (padded), narrower (cropped)
    assert cropped.shape == (6, 4, 1)
    assert (cropped[:2] == 0).all() and (cropped[5:] == 0).all()  # ceil(3 / 2) = 2 rows above, 1 below
    assert (cropped[2:5, :, 0] == image[:, 0:4, 0]).all()  # (5 - 4) // 2 = 0 columns cut on the left


@pytest.mark.integration  # Keras
def test_the_pillow_resize_layer_computes_pillows_pixels():
    from featx.backbones.pillow_resize import PillowResize, ops

    rng = np.random.default_rng(0)
    for spec in ("pil:bicubic:short=40:crop=32x32", "pil:bilinear:32x32", "pil:lanczos:short=40:crop=32x32",
                 "pil:hamming:32x32", "pil:bicubic:none:crop=32x32"):
        layer, pipeline = PillowResize(spec), ImagePipeline.from_spec(spec)
        for height, width in [(30, 45), (45, 30), (20, 20), (300, 451), (41, 17), (7, 100)]:
            image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
            ours = ops.convert_to_numpy(layer(image[None].astype(np.float32)))[0]
            assert np.abs(ours - pipeline.apply(image)).max() <= 1, (spec, height, width)  # a rare float32 tie


@pytest.mark.parametrize("processes", [False, True])
def test_the_decoders_give_a_pipelines_pixels(tmp_path, processes):
    from featx.engine.decode import decode_batches
    from featx.engine.pixels import DecodeSpec

    paths = photos(tmp_path)
    spec = "pil:bicubic:short=32:crop=28x28"
    batches = [(keys, rows.copy()) for keys, rows, _ in decode_batches(  # a batch's rows live until the next one
        [(i, p) for i, p in enumerate(paths)], DecodeSpec(28, spec), workers=2, batch_size=3, processes=processes)]
    pixels = np.concatenate([rows for _, rows in batches])
    assert [k for keys, _ in batches for k in keys] == list(range(len(paths)))
    assert np.array_equal(pixels, np.stack([load_model_input(p, 28, spec) for p in paths]))
    assert not np.array_equal(pixels, np.stack([load_model_input(p, 28, "crop") for p in paths]))  # not Keras' crop
