"""What users' files depend on stays byte-identical: fingerprints (they name and guard every cache),
view ids and views fingerprints. The literals were computed before the package moved into stages;
a change here orphans every cache and views cache users have."""

from __future__ import annotations

import pytest

import featx
from featx.cache.store import CacheIndex
from featx.data.augment import ViewRecipe
from featx.options import EmbedOptions
from tests.imagegen import make_class_folder


@pytest.mark.parametrize(("options", "fingerprint"), [
    (dict(backbone="MobileNetV2"), "4979850096f835b7"),
    (dict(backbone="ResNet50", weights="none", image_size=64, seed=3), "cd947eedaecb4832"),
    (dict(backbone="EfficientNetB0", weights="none", resize="crop", pooling="max", precision="float16",
          jpeg_draft=True), "08d22398d88c8dcd"),
])
def test_configuration_fingerprints_are_pinned(options, fingerprint):
    assert EmbedOptions(**options).resolve().fingerprint == fingerprint


def test_view_ids_and_views_fingerprints_are_pinned():
    recipe = ViewRecipe(4, "jitter,flip,crop")  # normalised to registry order
    assert recipe.fingerprint("abc123") == "381a418ba4564e41"
    assert recipe.view_id(b"0" * 64, 3).decode() == "2454ad03010d523ef00b3d2c94a653d98556d2d87691e0a4ddab5b691395300f"


@pytest.mark.integration
def test_an_embed_run_writes_the_pinned_fingerprints(tmp_path, cache_dir):
    data = make_class_folder(tmp_path / "data", per_class=2, splits=["train", "test"])
    features = featx.embed(data, "MobileNetV2", weights="none", image_size=32, views=2)
    assert features.fingerprint == "40a52fc52b71d8d8"
    assert CacheIndex.read(features.cache_path).attrs["fingerprint"] == "40a52fc52b71d8d8"
    views = featx.load_views(features.cache_path)
    assert views.fingerprint == "57776c6115b52a5b"
    assert len(views) == 2 * 4  # two views of each of the four training images
