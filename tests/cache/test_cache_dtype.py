"""Storing vectors as float16: half the bytes, within 1e-3, float32 on read, never a mixed cache."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from featx.cache.segments import segment_dir
from featx.cache.verify import verify_cache
from featx.data.layouts import scan_dataset
from featx.engine.run import embed_into_cache
from featx.errors import CacheError
from featx.features.vectors import load_features
from featx.options import EmbedOptions, RunOptions
from tests.cache.test_integrity_cache import CONFIG, RUN, StandInBackbone
from tests.imagegen import make_class_folder, write_image


def _embed(data, cache_file, dtype=None):
    run = RunOptions(batch_size=RUN.batch_size, workers=RUN.workers, dtype=dtype)
    return embed_into_cache(scan_dataset(data), CONFIG, cache_file, run, extractor=StandInBackbone())


def _bytes(cache_file) -> int:
    return cache_file.stat().st_size + sum(p.stat().st_size for p in segment_dir(cache_file).iterdir())


def test_float16_halves_the_vectors_and_reads_back_float32_within_1e_3(tmp_path):
    data = make_class_folder(tmp_path / "data", per_class=128)  # 256 images: one full chunk of vectors
    _embed(data, tmp_path / "f32.h5")
    _embed(data, tmp_path / "f16.h5", dtype="float16")
    full, half = load_features(tmp_path / "f32.h5"), load_features(tmp_path / "f16.h5")
    assert half.X.dtype == np.float32 and load_features(tmp_path / "f16.h5", dtype="float16").X.dtype == np.float16
    np.testing.assert_allclose(half.X, full.X, rtol=1e-3, atol=1e-6)
    assert _bytes(tmp_path / "f16.h5") <= 0.6 * _bytes(tmp_path / "f32.h5")
    with h5py.File(tmp_path / "f16.h5", "r") as h5:  # recorded in the cache, seen by plain h5py
        assert h5.attrs["dtype"] == "float16" and h5["vectors/features"].dtype == np.float16
    assert verify_cache(tmp_path / "f16.h5") == ([], [])


def test_another_dtype_on_an_existing_cache_is_one_line_and_a_plain_rerun_keeps_its_own(tmp_path):
    data = make_class_folder(tmp_path / "data", per_class=2)
    cache_file = tmp_path / "c.h5"
    _embed(data, cache_file, dtype="float16")
    write_image(data / "cat" / "new.png", seed=99)
    with pytest.raises(CacheError, match=r"stores its vectors as float16 and the 'dtype' parameter asks for "
                                         r"float32: a cache never mixes them") as caught:
        _embed(data, cache_file, dtype="float32")
    assert "\n" not in str(caught.value)
    report = _embed(data, cache_file)  # no dtype: the cache's own
    assert (report.embedded, report.reused) == (1, 4)
    with h5py.File(cache_file, "r") as h5:
        assert h5.attrs["dtype"] == "float16"
        assert {h5py.File(segment_dir(cache_file) / n, "r")["features"].dtype for n in h5["segments/name"].asstr()[()]} \
            == {np.dtype(np.float16)}


def test_an_unknown_dtype_names_the_parameter():
    with pytest.raises(ValueError, match="The 'dtype' parameter must be one of float32, float16; got 'int8'"):
        EmbedOptions(dtype="int8")


def test_lazy_features_read_only_the_rows_asked_for(tmp_path):
    data = make_class_folder(tmp_path / "data", per_class=3)
    cache_file = tmp_path / "c.h5"
    _embed(data, cache_file, dtype="float16")
    eager, lazy = load_features(cache_file), load_features(cache_file, lazy=True)
    assert lazy.X.shape == eager.X.shape and lazy.X.nbytes == eager.X.nbytes
    np.testing.assert_array_equal(np.asarray(lazy.X), eager.X)
    train = lazy.subset(np.arange(len(lazy)) % 2 == 0)  # still lazy: nothing read yet
    np.testing.assert_array_equal(np.asarray(train.X), eager.X[::2])
    np.testing.assert_array_equal(np.concatenate(list(lazy.X.batches(4))), eager.X)


class _Scaled(StandInBackbone):
    """The stand-in's vectors times ``scale``: features of a tiny norm (random weights, say)."""

    def __init__(self, scale: float) -> None:
        self.scale = scale

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return super().__call__(pixels) * np.float32(self.scale)


def test_vectors_too_small_for_float16_are_refused_before_anything_is_written(tmp_path):
    data = make_class_folder(tmp_path / "data", per_class=2)
    run = RunOptions(batch_size=RUN.batch_size, workers=RUN.workers, dtype="float16")
    with pytest.raises(ValueError, match=r"vectors of a batch are too small to store as float16 within 1e-3 \(largest value "
                                         r".*Store them with the 'dtype' parameter float32") as caught:
        embed_into_cache(scan_dataset(data), CONFIG, tmp_path / "c.h5", run, extractor=_Scaled(1e-9))
    assert "\n" not in str(caught.value) and not (tmp_path / "c.h5").exists()
    report = embed_into_cache(scan_dataset(data), CONFIG, tmp_path / "c.h5", RUN, extractor=_Scaled(1e-9))
    assert report.embedded == 4 and np.abs(load_features(tmp_path / "c.h5").X).max() > 0  # float32 keeps them


def test_all_zero_vectors_of_a_float16_backbone_are_refused_and_of_a_float32_one_kept(tmp_path):
    import dataclasses

    data = make_class_folder(tmp_path / "data", per_class=2)
    half = dataclasses.replace(CONFIG, precision="float16")
    with pytest.raises(ValueError, match=r"2 of 2 vectors of a batch came out all zero with the 'precision' parameter float16: "
                                         r"this backbone's features underflow float16"):
        embed_into_cache(scan_dataset(data), half, tmp_path / "c.h5", RUN, extractor=_Scaled(0.0))
    assert not (tmp_path / "c.h5").exists()
    report = embed_into_cache(scan_dataset(data), CONFIG, tmp_path / "z.h5", RUN, extractor=_Scaled(0.0))
    assert report.embedded == 4  # float32 computes zeros exactly: a black image through ReLUs may be all zero
