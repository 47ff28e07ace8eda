"""A folder nobody curated: every kind of odd file is embedded correctly or skipped with a precise
reason, the run neither crashes nor hangs, and skips are remembered."""

from __future__ import annotations

import io
import json
import os

import pytest
from PIL import Image
from typer.testing import CliRunner

from featx.cli import app
from tests.imagegen import make_pil_image, write_image

pytestmark = pytest.mark.integration  # embeds with Keras backbones

SIZE = (20, 20)  # small enough to stay under --max-pixels 1000; "big.png" is not
EMBEDDED = [
    "grey.png", "rgba.png", "palette.png", "cmyk.jpg", "sixteen_bit.png", "rotated.jpg",
    "animated.gif", "plain.bmp", "photo.webp", "scan.tiff", "my photo é.png", "日本.png",
    "png_named.jpg", "UPPER.JPEG", "link_to_grey.png",
]
SKIPPED = {
    "truncated.jpg": "truncated image data",
    "empty.jpg": "empty file (0 bytes)",
    "text.jpg": "not an image (cannot identify image file)",
    "document.tif": "not an image (cannot identify image file)",
    "big.png": "image too large (50x40 pixels, limit 1000; see --max-pixels)",
    "dangling.png": "broken symbolic link",
}


def make_messy_folder(root):
    a = root / "a"
    for name, mode in [("grey.png", "L"), ("rgba.png", "RGBA"), ("palette.png", "P"),
                       ("sixteen_bit.png", "I;16"), ("plain.bmp", "RGB"), ("photo.webp", "RGB"),
                       ("scan.tiff", "RGB"), ("my photo é.png", "RGB"), ("日本.png", "RGB"), ("UPPER.JPEG", "RGB")]:
        write_image(a / name, size=SIZE, mode=mode, seed=len(name) * 7 + ord(name[0]))
    write_image(a / "cmyk.jpg", size=SIZE, mode="CMYK", seed=3)
    rotated = make_pil_image(SIZE, seed=4)
    exif = Image.Exif()
    exif[0x0112] = 6
    rotated.save(a / "rotated.jpg", exif=exif)
    frames = [make_pil_image(SIZE, seed=s).convert("P") for s in (5, 6)]
    frames[0].save(a / "animated.gif", save_all=True, append_images=frames[1:])
    buffer = io.BytesIO()
    make_pil_image(SIZE, seed=8).save(buffer, format="PNG")
    (a / "png_named.jpg").write_bytes(buffer.getvalue())
    jpeg = io.BytesIO()
    make_pil_image((30, 30), seed=9).save(jpeg, format="JPEG")
    (a / "truncated.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) // 2])
    (a / "empty.jpg").write_bytes(b"")
    (a / "text.jpg").write_text("hello, I am not a picture")
    (a / "document.tif").write_bytes(b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n")
    write_image(a / "big.png", size=(50, 40), seed=10)
    os.symlink(a / "grey.png", a / "link_to_grey.png")
    os.symlink(a / "nowhere.png", a / "dangling.png")
    os.symlink(a, a / "loop")  # a folder symlink to itself: must not recurse forever
    write_image(root / "b" / "ok.png", size=SIZE, seed=11)
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("not a class")
    (root / ".hidden").mkdir()
    write_image(root / ".hidden" / "x.png", size=SIZE, seed=12)
    return root


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def test_every_messy_file_is_embedded_or_skipped_with_its_reason(tmp_path, cache_dir):
    data = make_messy_folder(tmp_path / "data")
    args = ["embed", data, "--weights", "none", "--image-size", "32", "--max-pixels", "1000", "--json"]
    result = run(*args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    skipped = {os.path.basename(s["path"]): s["reason"] for s in report["skipped"]}
    assert skipped == SKIPPED
    assert report["embedded"] + report["reused"] == len(EMBEDDED) + 1  # + b/ok.png

    info = json.loads(run("cache", "info", "--json").stdout)[0]
    assert info["images"] + 1 == len(EMBEDDED) + 1 + len(SKIPPED)  # the dangling link has no row
    import featx

    features = featx.load_features(report["cache"])
    assert features.classes == ("a", "b")
    assert sorted(os.path.basename(p) for p in features.paths) == sorted(EMBEDDED + ["ok.png"])
    rows = dict(zip((os.path.basename(p) for p in features.paths), features.ids))
    assert rows["link_to_grey.png"] == rows["grey.png"]  # followed; same bytes, one vector

    strict = run(*args, "--strict")
    assert strict.exit_code == 1 and "6 images were skipped and --strict is set" in strict.stderr

    again = json.loads(run(*args).stdout)
    assert again["embedded"] == 0  # skipped files are not retried while unchanged
    write_image(data / "a" / "text.jpg", size=SIZE, seed=13, fmt="JPEG")  # the user fixed it
    fixed = json.loads(run(*args).stdout)
    assert fixed["embedded"] == 1 and "text.jpg" not in {os.path.basename(s["path"]) for s in fixed["skipped"]}


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_unreadable_file_is_skipped(tmp_path, cache_dir):
    data = tmp_path / "data"
    write_image(data / "a" / "ok.png", size=SIZE)
    locked = write_image(data / "a" / "locked.png", size=SIZE, seed=1)
    locked.chmod(0)
    result = run("embed", data, "--weights", "none", "--image-size", "32", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout)["skipped"][0]["reason"] == "permission denied"
