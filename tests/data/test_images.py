"""Decoding every kind of image file to RGB, the reasons for failures, and Keras-exact resizing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from featx.data.images import IMAGE_EXTENSIONS, RESIZE_MODES, decode_rgb, is_image_file, load_image, resize_image
from featx.errors import FeatxError, ImageDecodeError
from tests.imagegen import make_pil_image, pixels, write_image

# ---------------------------------------------------------------- file names


@pytest.mark.parametrize("name", ["a.jpg", "b.JPEG", "c.Png", "d.bmp", "e.GIF", "f.webp",
                                  "g.tif", "h.TIFF", "dir/x.jpg"])
def test_is_image_file_accepts_image_extensions_in_any_case(name):
    assert is_image_file(name)


@pytest.mark.parametrize("name", [".hidden.jpg", "dir/.x.png", "notes.txt", "jpg", "a.jpg.bak",
                                  "a.svg", "a"])
def test_is_image_file_rejects_hidden_and_other_files(name):
    assert not is_image_file(name)


def test_extension_set_and_modes_are_as_documented():
    assert IMAGE_EXTENSIONS == {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
    assert RESIZE_MODES == ("stretch", "crop", "pad")


# ---------------------------------------------------------------- decoding


def _check_rgb(array, height, width):
    assert array.dtype == np.uint8
    assert array.shape == (height, width, 3)


def test_rgb_png_is_read_exactly(tmp_path):
    path = write_image(tmp_path / "a.png", size=(48, 40), seed=5)
    out = decode_rgb(path)
    _check_rgb(out, 40, 48)
    np.testing.assert_array_equal(out, pixels((48, 40), seed=5))


@pytest.mark.parametrize("suffix", [".bmp", ".tiff", ".tif"])
def test_lossless_formats_round_trip(tmp_path, suffix):
    path = write_image(tmp_path / f"a{suffix}", size=(33, 21), seed=2)
    np.testing.assert_array_equal(decode_rgb(path), pixels((33, 21), seed=2))


def test_lossless_webp_round_trips(tmp_path):
    path = tmp_path / "a.webp"
    make_pil_image((30, 20), seed=4).save(path, lossless=True)
    np.testing.assert_array_equal(decode_rgb(path), pixels((30, 20), seed=4))


def test_grayscale_is_replicated_to_three_channels(tmp_path):
    path = write_image(tmp_path / "g.png", mode="L", seed=1)
    out = decode_rgb(path)
    _check_rgb(out, 40, 48)
    grey = np.asarray(Image.open(path))
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], grey)


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_alpha_is_dropped_without_compositing(tmp_path, mode):
    path = write_image(tmp_path / "a.png", mode=mode, seed=3)
    out = decode_rgb(path)
    _check_rgb(out, 40, 48)
    colour = {"RGBA": "RGB", "LA": "L"}[mode]
    expected = make_pil_image(mode=colour, seed=3).convert("RGB")
    np.testing.assert_array_equal(out, np.asarray(expected))


@pytest.mark.parametrize("transparency", [None, 0])
def test_palette_image_is_expanded(tmp_path, transparency):
    image = make_pil_image(mode="P", seed=6)
    path = tmp_path / "p.png"
    image.save(path, **({} if transparency is None else {"transparency": transparency}))
    assert Image.open(path).mode == "P"
    np.testing.assert_array_equal(decode_rgb(path), np.asarray(image.convert("RGB")))


def test_one_bit_image_becomes_black_and_white(tmp_path):
    path = write_image(tmp_path / "b.png", mode="1")
    out = decode_rgb(path)
    _check_rgb(out, 40, 48)
    assert set(np.unique(out)) <= {0, 255}


def test_cmyk_jpeg_comes_back_as_rgb(tmp_path):
    path = tmp_path / "c.jpg"
    make_pil_image(mode="CMYK", seed=7).save(path, quality=95)
    assert Image.open(path).mode == "CMYK"
    out = decode_rgb(path)
    _check_rgb(out, 40, 48)
    error = np.abs(out.astype(float) - pixels(seed=7)).mean()
    assert error < 8, error


@pytest.mark.parametrize("mode,suffix", [("I;16", ".png"), ("I;16B", ".png"), ("I;16", ".tif"),
                                         ("I;16B", ".tif"), ("I", ".tif")])
def test_sixteen_bit_values_are_scaled_not_clipped(tmp_path, mode, suffix):
    values = np.array([[0, 255, 256, 32768, 65535, 40000]], dtype=np.uint32)
    dtype = {"I;16": "<u2", "I;16B": ">u2", "I": "=i4"}[mode]
    path = tmp_path / f"deep{suffix}"
    Image.frombytes(mode, (6, 1), values.astype(dtype).tobytes()).save(path)
    out = decode_rgb(path)
    _check_rgb(out, 1, 6)
    expected = [0, 0, 1, 128, 255, 156]
    for channel in range(3):
        assert out[0, :, channel].tolist() == expected


def test_exif_orientation_is_applied(tmp_path):
    stored = pixels((48, 40), seed=8).copy()
    stored[:10, :10] = (255, 0, 0)  # a red mark in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    path = tmp_path / "rotated.jpg"
    Image.fromarray(stored).save(path, exif=exif, quality=95)
    out = decode_rgb(path)
    _check_rgb(out, 48, 40)  # height and width swapped
    as_stored = np.asarray(Image.open(path).convert("RGB"))  # Pillow alone ignores EXIF
    np.testing.assert_array_equal(out, np.rot90(as_stored, k=-1))
    assert out[2, -3, 0] > 200 and out[2, -3, 1] < 60  # the mark is now top-right


def test_animated_gif_gives_its_first_frame(tmp_path):
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200)]
    frames = [Image.new("RGB", (20, 10), colour) for colour in colours]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    assert Image.open(path).n_frames == 3
    out = decode_rgb(path)
    _check_rgb(out, 10, 20)
    np.testing.assert_array_equal(out, np.broadcast_to(np.array(colours[0], np.uint8), out.shape))


def test_decode_returns_a_fresh_writable_array(tmp_path):
    out = decode_rgb(write_image(tmp_path / "a.png"))
    out[0, 0] = 0  # must not raise "assignment destination is read-only"
    assert out.flags.c_contiguous


# ---------------------------------------------------------------- failures


def _reason(path) -> str:
    with pytest.raises(ImageDecodeError) as info:
        decode_rgb(path)
    assert isinstance(info.value, FeatxError)
    message = str(info.value)
    assert "\n" not in message and str(path) not in message
    return message


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.touch()
    assert _reason(path) == "empty file (0 bytes)"


def test_text_file_named_jpg(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("these are not pixels\n")
    assert _reason(path) == "not an image (cannot identify image file)"


@pytest.mark.parametrize("suffix", [".jpg", ".png", ".gif", ".bmp"])
def test_truncated_image_data(tmp_path, suffix):
    whole = write_image(tmp_path / f"whole{suffix}", size=(64, 64)).read_bytes()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(whole[: len(whole) // 2])
    assert _reason(path) == "truncated image data"
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_damaged_image_is_reported_not_returned(tmp_path):
    whole = write_image(tmp_path / "whole.webp", size=(64, 64)).read_bytes()
    path = tmp_path / "cut.webp"
    path.write_bytes(whole[: len(whole) // 2])
    assert _reason(path)


def test_missing_file(tmp_path):
    assert _reason(tmp_path / "nowhere.png") == "file not found"


def test_folder_instead_of_file(tmp_path):
    folder = tmp_path / "dir.png"
    folder.mkdir()
    assert "folder" in _reason(folder)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read anything")
def test_permission_denied(tmp_path):
    path = write_image(tmp_path / "locked.png")
    path.chmod(0)
    try:
        assert _reason(path) == "permission denied"
    finally:
        path.chmod(0o644)


# ---------------------------------------------------------------- resizing


def _keras_resize(image: np.ndarray, size, mode: str) -> np.ndarray:
    """The Keras twin that exported models carry (only these tests need TensorFlow)."""
    import keras

    from featx.backbones.preprocessing import resize_layer

    return keras.ops.convert_to_numpy(resize_layer(tuple(size), mode)(image.astype("float32")[None]))[0]


@pytest.mark.integration
@pytest.mark.parametrize("mode", RESIZE_MODES)
@pytest.mark.parametrize("in_hw", [(40, 48), (48, 40), (17, 31), (64, 64), (9, 5)])
@pytest.mark.parametrize("out_hw", [(32, 32), (50, 70), (70, 50), (96, 80), (7, 9), (40, 48)])
def test_resize_matches_keras_resizing(mode, in_hw, out_hw):
    image = np.random.default_rng(sum(in_hw) + 7 * sum(out_hw)).integers(
        0, 256, size=(*in_hw, 3), dtype=np.uint8)
    ours = resize_image(image, out_hw, mode)
    assert ours.dtype == np.float32 and ours.shape == (*out_hw, 3)
    np.testing.assert_allclose(ours, _keras_resize(image, out_hw, mode), atol=1e-3, rtol=0)


def test_stretch_to_the_same_size_returns_the_pixels_as_float32():
    image = pixels((21, 13), seed=9)
    out = resize_image(image, (13, 21))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, image.astype(np.float32))


def test_pad_fills_borders_with_zero_and_crop_keeps_the_centre():
    wide = np.full((10, 40, 3), 100, dtype=np.uint8)
    padded = resize_image(wide, (40, 40), "pad")
    assert padded[0].max() == 0 and padded[-1].max() == 0 and padded[20, 20, 0] == 100
    marked = np.zeros((10, 40, 3), dtype=np.uint8)
    marked[:, 15:25] = 255
    cropped = resize_image(marked, (10, 10), "crop")
    np.testing.assert_array_equal(cropped, np.full((10, 10, 3), 255, np.float32))


def test_unknown_mode_names_the_allowed_modes():
    with pytest.raises(ValueError, match="stretch.*crop.*pad.*'squash'"):
        resize_image(np.zeros((4, 4, 3), np.uint8), (2, 2), "squash")


@pytest.mark.parametrize("size", [(0, 4), (4, -1), (4,), "ab"])
def test_bad_size_is_a_value_error(size):
    with pytest.raises(ValueError, match="size"):
        resize_image(np.zeros((4, 4, 3), np.uint8), size)


def test_load_image_is_decode_then_resize(tmp_path):
    path = write_image(tmp_path / "a.png", size=(48, 40), seed=11)
    for mode in RESIZE_MODES:
        expected = resize_image(decode_rgb(path), (24, 30), mode)
        np.testing.assert_array_equal(load_image(path, (24, 30), mode), expected)


def test_images_and_datasets_do_not_import_tensorflow():
    code = ("import sys, featx.data.images, featx.data.layouts; "
            "bad = [m for m in ('tensorflow', 'keras', 'torch', 'jax') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    root = Path(__file__).resolve().parents[2]
    path = os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
