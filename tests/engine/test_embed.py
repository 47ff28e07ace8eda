"""Embedding datasets into the cache: layouts, reruns, configuration changes, bad files, custom
backbones, weights, and the scikit-learn Embedder."""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest

import featx
from featx.errors import FeatxError, OptionError, WeightsUnavailableError
from tests.imagegen import make_class_folder, write_image

pytestmark = pytest.mark.integration  # embeds with Keras backbones

OPTS = dict(weights="none", image_size=32)  # random MobileNetV2 weights at 32 px: fast and offline


def _embed(data, **extra):
    features = featx.embed(data, "MobileNetV2", **{**OPTS, **extra})
    return features, features.report


def _by_path(features):
    return {os.path.basename(p): row for p, row in zip(features.paths, features.X)}


def test_class_folders(tmp_path, cache_dir):
    data = make_class_folder(tmp_path / "data", classes=("cat", "dog"), per_class=3)
    features, report = _embed(data)
    assert features.X.shape == (6, 1280) and features.X.dtype == np.float32
    assert features.classes == ("cat", "dog")
    assert sorted(features.y.tolist()) == [0, 0, 0, 1, 1, 1]
    assert all(("cat" in p) == (y == 0) for p, y in zip(features.paths, features.y))
    assert set(features.split) == {""}
    assert len(set(features.ids)) == 6
    assert (report.images, report.embedded, report.reused, report.skipped) == (6, 6, 0, [])
    assert report.cache_path.parent == cache_dir
    assert np.isfinite(features.X).all() and (np.abs(features.X).sum(axis=1) > 0).all()


def test_split_folders(tmp_path, cache_dir):
    data = make_class_folder(tmp_path / "data", per_class=2, splits=("train", "validation", "test"))
    features, _ = _embed(data)
    assert sorted(set(features.split)) == ["test", "train", "val"]
    assert len(features.where_split("val")) == 4 and features.has_splits


def test_csv_manifest_with_a_missing_file(tmp_path, cache_dir):
    for i in range(3):
        write_image(tmp_path / "imgs" / f"a{i}.png", seed=i)
    rows = ["path,label,split", "imgs/a0.png,ant,train", "imgs/a1.png,bee,train",
            "imgs/a2.png,bee,test", "imgs/gone.png,ant,test"]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    features, report = _embed(tmp_path / "labels.csv")
    assert features.classes == ("ant", "bee")
    assert dict(zip((os.path.basename(p) for p in features.paths), features.split)) == {
        "a0.png": "train", "a1.png": "train", "a2.png": "test"}
    assert [(os.path.basename(s.path), s.reason) for s in report.skipped] == [("gone.png", "file not found")]


def test_unlabelled_folder(tmp_path, cache_dir):
    for i in range(3):
        write_image(tmp_path / "loose" / f"x{i}.jpg", seed=i)
    features, _ = _embed(tmp_path / "loose")
    assert features.classes == () and features.y.tolist() == [-1, -1, -1]


def test_rerun_reuses_adds_changes_and_removes(tmp_path, cache_dir):
    data = make_class_folder(tmp_path / "data", per_class=3)
    first, _ = _embed(data)
    again, report = _embed(data)
    assert (report.embedded, report.reused) == (0, 6)
    np.testing.assert_array_equal(again.X, first.X)

    write_image(data / "cat" / "new.png", seed=100)  # added
    write_image(data / "dog" / "dog_0.png", seed=101)  # changed in place
    (data / "cat" / "cat_1.png").unlink()  # removed
    features, report = _embed(data)
    assert (report.images, report.embedded, report.reused) == (6, 2, 4)
    rows, before = _by_path(features), _by_path(first)
    assert "cat_1.png" not in rows and "new.png" in rows
    assert not np.array_equal(rows["dog_0.png"], before["dog_0.png"])
    np.testing.assert_array_equal(rows["cat_0.png"], before["cat_0.png"])
    with featx.cache.schema.open_cache(report.cache_path) as h5:  # an append never rewrites vectors
        assert len(h5["vectors/id"]) == 8
    from featx.cache.append import compact_cache

    assert compact_cache(report.cache_path) == (2, 2)  # compact drops the removed and changed files' vectors
    with featx.cache.schema.open_cache(report.cache_path) as h5:
        assert len(h5["vectors/id"]) == 6
    np.testing.assert_array_equal(featx.load_features(report.cache_path).X, features.X)


def test_rows_are_joined_by_content_not_order(tmp_path, cache_dir):
    data = make_class_folder(tmp_path / "data", per_class=2)
    first, _ = _embed(data)
    (data / "cat" / "cat_0.png").rename(data / "cat" / "zz_renamed.png")
    features, report = _embed(data)
    assert report.embedded == 0  # same bytes under a new name: nothing recomputed
    np.testing.assert_array_equal(_by_path(features)["zz_renamed.png"], _by_path(first)["cat_0.png"])


def test_duplicate_files_are_embedded_once(tmp_path, cache_dir):
    data = make_class_folder(tmp_path / "data", per_class=2)
    shutil.copy(data / "cat" / "cat_0.png", data / "dog" / "copy_of_cat.png")
    features, report = _embed(data)
    rows = _by_path(features)
    np.testing.assert_array_equal(rows["copy_of_cat.png"], rows["cat_0.png"])
    assert len(features) == 5 and len(set(features.ids)) == 4
    with featx.cache.schema.open_cache(report.cache_path) as h5:
        assert len(h5["vectors/id"]) == 4


def test_configurations_never_share_vectors(tmp_path, cache_dir):
    data = make_class_folder(tmp_path / "data", per_class=2)
    base, base_report = _embed(data, image_size=64)  # a 2x2 last feature map: max != avg
    variants = [dict(image_size=72), dict(pooling="max"), dict(resize="pad"), dict(seed=1)]
    paths = {base_report.cache_path}
    for variant in variants:
        features, report = _embed(data, **{"image_size": 64, **variant})
        assert report.embedded == 4, variant
        assert features.fingerprint != base.fingerprint
        assert not np.array_equal(features.X, base.X), variant
        paths.add(report.cache_path)
    assert len(paths) == len(variants) + 1


def test_random_weights_are_deterministic_by_seed(tmp_path):
    data = make_class_folder(tmp_path / "data", per_class=1)
    a, _ = _embed(data, cache=tmp_path / "a")
    b, _ = _embed(data, cache=tmp_path / "b")
    np.testing.assert_array_equal(a.X, b.X)


def test_undecodable_image_is_skipped_with_reason_never_a_zero_vector(tmp_path, cache_dir):
    data = make_class_folder(tmp_path / "data", per_class=2)
    (data / "cat" / "broken.jpg").write_text("this is not a jpeg")
    features, report = _embed(data)
    assert len(features) == 4
    assert [(os.path.basename(s.path), s.reason) for s in report.skipped] == [
        ("broken.jpg", "not an image (cannot identify image file)")]
    assert all("broken" not in p for p in features.paths)
    _, again = _embed(data)  # recorded: not retried while unchanged
    assert again.embedded == 0 and len(again.skipped) == 1


def test_nothing_embeddable_is_an_error(tmp_path, cache_dir):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "a.png").write_bytes(b"")
    with pytest.raises(FeatxError, match=r"None of the 1 images .* empty file"):
        _embed(tmp_path / "bad")


def test_weights_from_a_file_are_part_of_the_fingerprint(tmp_path, cache_dir):
    import keras

    data = make_class_folder(tmp_path / "data", per_class=1)
    files = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        model = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
        files.append(tmp_path / f"w{seed}.weights.h5")
        model.save_weights(files[-1])
    one, r1 = _embed(data, weights=str(files[0]))
    two, r2 = _embed(data, weights=str(files[1]))
    assert r1.cache_path != r2.cache_path and not np.array_equal(one.X, two.X)
    with pytest.raises(OptionError, match="neither 'imagenet', 'none' nor an existing weights file"):
        _embed(data, weights=str(tmp_path / "missing.weights.h5"))


def test_imagenet_download_failure_is_one_clear_error(tmp_path, cache_dir):
    data = make_class_folder(tmp_path / "data", per_class=1)
    with pytest.raises(WeightsUnavailableError) as caught:
        featx.embed(data, "MobileNetV2", image_size=96)  # weights="imagenet"; the network is closed
    message = str(caught.value)
    assert "refused" in caught.value.reason.lower()  # it went to the closed local proxy, not the internet
    assert "\n" not in message
    assert "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5" in message
    assert "https://storage.googleapis.com/" in message
    assert os.path.join(os.environ["KERAS_HOME"], "models") in message
    assert "set the 'weights' parameter to a weights file" in message
    assert "set --weights to a weights file" in caught.value.render(lambda param: "--" + param)


def _save_custom_model(path, pooled: bool):
    import keras

    inputs = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(5, 3, kernel_initializer="ones", bias_initializer="zeros")(inputs)
    if pooled:
        x = keras.layers.GlobalMaxPooling2D()(x)
    keras.Model(inputs, x).save(path)
    return path


def test_custom_keras_backbone(tmp_path, cache_dir):
    data = make_class_folder(tmp_path / "data", per_class=1, size=(24, 24))
    feature_map = _save_custom_model(tmp_path / "map.keras", pooled=False)
    vector = _save_custom_model(tmp_path / "vec.keras", pooled=True)

    raw = featx.embed(data, str(feature_map))

    _ = raw.report
    assert raw.X.shape == (2, 5) and raw.config["input_size"] == 24
    assert raw.config["preprocessing"] == "none" and raw.config["weights"] == "embedded"
    # With all-ones kernels each channel is 3x3x3 sums of raw pixels, averaged over positions.
    from featx.data.images import load_image

    pixels = load_image(raw.paths[0], (24, 24))
    windows = np.lib.stride_tricks.sliding_window_view(pixels, (3, 3, 3)).sum(axis=(-3, -2, -1))
    np.testing.assert_allclose(raw.X[0], np.full(5, windows.mean()), rtol=1e-4)

    pooled = featx.embed(data, str(vector))

    _ = pooled.report
    assert pooled.X.shape == (2, 5) and not np.allclose(pooled.X, raw.X)
    scaled = featx.embed(data, str(feature_map), preprocess="tf")
    _ = scaled.report
    np.testing.assert_allclose(scaled.X, raw.X / 127.5 - 27 * np.ones(5), rtol=1e-3, atol=1e-3)

    with pytest.raises(FileNotFoundError, match="no such .keras model file"):
        featx.embed(data, str(tmp_path / "nope.keras"))
    (tmp_path / "junk.keras").write_text("not a zip")
    with pytest.raises(OptionError, match="not a valid .keras model file"):
        featx.embed(data, str(tmp_path / "junk.keras"))


def test_embedder_in_a_scikit_learn_pipeline(tmp_path, cache_dir):
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = make_class_folder(tmp_path / "data", per_class=4)
    paths = sorted(str(p) for p in data.rglob("*.png"))
    labels = ["cat" in p for p in paths]
    pipeline = make_pipeline(
        featx.Embedder("MobileNetV2", weights="none", image_size=32), StandardScaler(), LogisticRegression()
    )
    pipeline.fit(paths, labels)
    assert pipeline.score(paths, labels) >= 0.75
    embedder = clone(pipeline[0]).fit(paths)
    direct = featx.embed(data, "MobileNetV2", **OPTS)
    np.testing.assert_allclose(embedder.transform(paths[:2]), _rows_for(direct, paths[:2]), atol=1e-6)
    assert featx.Embedder("Xception").get_params()["backbone"] == "Xception"


def _rows_for(features, paths):
    index = {p: i for i, p in enumerate(features.paths)}
    return features.X[[index[p] for p in paths]]
