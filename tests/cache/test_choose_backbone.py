"""A cache is chosen by the backbone name a user knows: a .keras backbone by its file name or path,
not only by the ``custom:<file>:sha256:<hex>`` string it records."""

from __future__ import annotations

from dataclasses import replace

import pytest

from featx.cache.catalog import choose_cache
from featx.data.layouts import scan_dataset
from featx.engine.run import embed_into_cache
from featx.errors import CacheNotFoundError
from tests.cache.test_integrity_cache import CONFIG, RUN, StandInBackbone
from tests.imagegen import make_class_folder

CUSTOM = replace(CONFIG, backbone="custom:tiny.keras:sha256:" + "ab" * 32, weights="embedded", model_path="tiny.keras")


@pytest.fixture
def folder(tmp_path):
    data = make_class_folder(tmp_path / "data", per_class=2)
    for config, name in ((CONFIG, "data--MobileNetV2.h5"), (CUSTOM, "data--tiny.h5")):
        embed_into_cache(scan_dataset(data), config, tmp_path / "featx" / name, RUN, extractor=StandInBackbone())
    return tmp_path / "featx"


@pytest.mark.parametrize("asked", ["tiny.keras", "TINY.keras", "models/tiny.keras", CUSTOM.backbone])
def test_a_keras_file_backbone_is_chosen_by_its_file_name_or_path(folder, asked):
    assert choose_cache(folder, asked).path.name == "data--tiny.h5"
    assert choose_cache(folder, "mobilenetv2").path.name == "data--MobileNetV2.h5"


def test_an_unknown_backbone_lists_the_cached_ones_by_the_names_users_give(folder):
    with pytest.raises(CacheNotFoundError, match=r"backbones cached: MobileNetV2, tiny\.keras\)"):
        choose_cache(folder, "other.keras")
