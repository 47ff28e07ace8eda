"""The cache file: schema checks on read, damaged and foreign files, resuming from shards."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import featx
from featx.cache.catalog import find_caches, latest_cache
from featx.cache.segments import segment_dir
from featx.cache.shards import list_shards, write_shard
from featx.errors import CacheError
from tests.imagegen import make_class_folder

pytestmark = pytest.mark.integration  # embeds with Keras backbones

OPTS = dict(weights="none", image_size=32)


@pytest.fixture
def embedded(tmp_path, cache_dir):
    data = make_class_folder(tmp_path / "data", per_class=3)
    features = featx.embed(data, "MobileNetV2", **OPTS)
    report = features.report
    return data, features, report.cache_path


def test_layout_and_attributes(embedded):
    _, features, path = embedded
    with h5py.File(path, "r") as h5:
        assert h5.attrs["encoding-type"] == "featx-feature-cache" and h5.attrs["encoding-version"] == 3
        for group in ("vectors", "images", "skipped", "segments"):
            assert h5[group].attrs["encoding-type"] == "featx-feature-cache"
        assert h5.attrs["dtype"] == "float32" and h5["vectors/features"].is_virtual
        (name,) = h5["segments/name"].asstr()[()]
        # plain h5py reads the vectors through the virtual dataset, in /vectors/id order
        np.testing.assert_array_equal(h5["vectors/features"][()][_rows_of(h5, features)], features.X)
    with h5py.File(segment_dir(path) / name, "r") as segment:
        assert segment.attrs["encoding-type"] == "featx-feature-segment"
        assert segment["features"].dtype == np.float32 and segment["features"].chunks is not None
        assert segment["features"].fletcher32
    with h5py.File(path, "r") as h5:
        assert h5.attrs["backbone"] == "MobileNetV2" and h5.attrs["weights"] == "none:seed=0"
        assert h5.attrs["input_size"] == 32 and h5.attrs["resize"] == "stretch"
        assert h5.attrs["pooling"] == "avg" and h5.attrs["preprocessing"] == "tf"
        for key in ("keras_version", "tensorflow_version", "featx_version", "fingerprint"):
            assert h5.attrs[key]
        assert list(h5["classes"].asstr()[()]) == ["cat", "dog"]
        assert sorted(h5["images/path"].asstr()[()]) == sorted(
            f"{c}/{c}_{i}.png" for c in ("cat", "dog") for i in range(3))
    assert featx.load_features(path).fingerprint == features.fingerprint


@pytest.mark.parametrize(
    "damage,message",
    [
        (lambda p: p.write_bytes(b"plain text, not HDF5"), "not a readable featx cache"),
        (lambda p: p.write_bytes(p.read_bytes()[:2000]), "not a readable featx cache"),
        (lambda p: h5py.File(p, "w").close(), "is not a featx cache"),
        (lambda p: _set_attr(p, "encoding-version", 4), "written by cache schema v4; this featx reads v1 to v3"),
        (lambda p: _delete(p, "images"), "damaged featx cache"),
    ],
)
def test_bad_cache_files_give_one_clear_line(embedded, damage, message):
    _, _, path = embedded
    damage(path)
    with pytest.raises(CacheError, match=message) as caught:
        featx.load_features(path)
    assert "\n" not in str(caught.value)


def _rows_of(h5, features):
    row_of = {i.decode(): row for row, i in enumerate(h5["vectors/id"][()])}
    return [row_of[i] for i in features.ids]


def _set_attr(path, key, value):
    with h5py.File(path, "a") as h5:
        h5.attrs[key] = value


def _delete(path, key):
    with h5py.File(path, "a") as h5:
        del h5[key]


def test_missing_cache_file(tmp_path):
    with pytest.raises(CacheError, match="No feature cache at"):
        featx.load_features(tmp_path / "nothing.h5")


def test_shards_left_by_a_killed_run_are_reused(embedded):
    data, features, path = embedded
    # A run that was killed after committing one batch leaves a shard: its vectors are reused.
    from tests.imagegen import write_image

    write_image(data / "cat" / "extra.png", seed=77)
    fresh = featx.embed(data, "MobileNetV2", cache=path.parent / "other", **OPTS)
    _ = fresh.report
    row = list(fresh.paths).index(str(data / "cat" / "extra.png"))
    sentinel = np.full((1, fresh.feature_dim), 42.0, np.float32)  # not a vector the backbone makes
    write_shard(path, features.fingerprint, np.asarray([fresh.ids[row].encode()]), sentinel)
    assert len(list_shards(path)) == 1

    resumed = featx.embed(data, "MobileNetV2", **OPTS)

    report = resumed.report
    assert (report.embedded, report.reused) == (0, 7)
    np.testing.assert_array_equal(resumed.X[row], sentinel[0])
    assert list_shards(path) == []


def test_shards_of_another_configuration_are_ignored(embedded):
    data, features, path = embedded
    write_shard(path, "0" * 16, np.asarray([features.ids[0].encode()]), np.zeros((1, 1280), np.float32))
    resumed = featx.embed(data, "MobileNetV2", **OPTS)
    report = resumed.report
    np.testing.assert_array_equal(resumed.X, features.X)
    assert report.embedded == 0


def test_find_and_latest_cache(embedded, cache_dir):
    data, _, path = embedded
    other = featx.embed(data, "MobileNetV2", weights="none", image_size=40).report.cache_path
    caches = find_caches(cache_dir)
    assert [c.path for c in caches] == [other, path]
    assert caches[0].images == 6 and caches[0].config["input_size"] == 40
    assert latest_cache(cache_dir) == other
    assert latest_cache(cache_dir, backbone="mobilenetv2") == other
    with pytest.raises(CacheError, match="No cache of backbone 'Xception'.*MobileNetV2"):
        latest_cache(cache_dir, backbone="Xception")
    with pytest.raises(CacheError, match="No feature cache in"):
        latest_cache(cache_dir / "empty")


def test_an_explicit_cache_file_of_another_configuration_is_refused(embedded):
    data, _, path = embedded
    with pytest.raises(CacheError, match="another backbone configuration"):
        featx.embed(data, "MobileNetV2", weights="none", image_size=48, cache=path)
