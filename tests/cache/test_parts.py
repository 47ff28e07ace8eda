"""The image table is appended, never rewritten: a commit writes a part of the rows it adds, the index
lists runs of part rows, and what a reader gets is exactly what a cache written at once holds."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pytest

import featx.cache.parts
import featx.errors
from featx.cache.append import compact_cache
from featx.cache.segments import segment_dir
from featx.cache.store import CacheIndex
from featx.cache.verify import verify_cache
from featx.features.vectors import load_features
from tests.cache.test_integrity_cache import _embed
from tests.imagegen import make_class_folder, write_image


@pytest.fixture
def data(tmp_path):
    return make_class_folder(tmp_path / "data", per_class=3)  # 6 images


def _files(cache_file) -> dict[str, str]:
    """sha256 of every file of the segment folder, by name."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in segment_dir(cache_file).iterdir()}


def _same_as_a_fresh_cache(cache_file, data, tmp_path) -> None:
    fresh = tmp_path / "fresh" / "c.h5"
    _embed(data, fresh)
    got, want = load_features(cache_file), load_features(fresh)
    assert got.paths.tolist() == want.paths.tolist() and got.ids.tolist() == want.ids.tolist()
    np.testing.assert_array_equal(got.X, want.X)
    np.testing.assert_array_equal(got.y, want.y)
    assert verify_cache(cache_file) == ([], [])
    shutil.rmtree(fresh.parent)


@pytest.mark.parametrize("block", [65536, 3, 1])  # the new table laid out a block of rows at a time
def test_adding_images_writes_a_part_of_the_new_rows_and_rewrites_no_committed_file(tmp_path, data, block, monkeypatch):
    monkeypatch.setattr(featx.cache.parts, "_BLOCK", block)
    cache_file = tmp_path / "c.h5"
    _embed(data, cache_file)
    before = _files(cache_file)
    write_image(data / "cat" / "new.png", seed=90)
    write_image(data / "dog" / "new.png", seed=91)
    assert _embed(data, cache_file).embedded == 2
    after = _files(cache_file)
    assert {k: v for k, v in after.items() if k in before} == before  # every committed file as it was
    index = CacheIndex.read(cache_file)
    assert index.parts.rows.tolist() == [6, 2]  # the first part, and one of the two new rows only
    assert len(index.runs) == 4  # cat's 3 old rows, its new one, dog's 3, its new one
    _same_as_a_fresh_cache(cache_file, data, tmp_path)


def test_a_changed_file_writes_its_row_again_and_a_removed_one_writes_no_part(tmp_path, data):
    cache_file = tmp_path / "c.h5"
    _embed(data, cache_file)
    changed = sorted((data / "dog").iterdir())[1]
    write_image(changed, seed=70)
    assert _embed(data, cache_file).embedded == 1
    assert CacheIndex.read(cache_file).parts.rows.tolist() == [6, 1]
    _same_as_a_fresh_cache(cache_file, data, tmp_path)
    sorted((data / "cat").iterdir())[0].unlink()
    parts = _files(cache_file)
    assert _embed(data, cache_file).reused == 5
    assert _files(cache_file).keys() == parts.keys()  # a new index of fewer runs; no new part
    _same_as_a_fresh_cache(cache_file, data, tmp_path)


def test_the_parts_fold_into_one_past_the_limit_and_on_compact(tmp_path, data, monkeypatch):
    monkeypatch.setattr(featx.cache.parts, "MAX_PARTS", 3)
    cache_file = tmp_path / "c.h5"
    _embed(data, cache_file)
    for seed in range(3):
        write_image(data / "cat" / f"more{seed}.png", seed=100 + seed)
        _embed(data, cache_file)
    assert len(CacheIndex.read(cache_file).parts) == 1  # the fourth commit found 3 parts: folded
    assert sorted(p.name.startswith("images-") for p in segment_dir(cache_file).iterdir()).count(True) == 1
    write_image(data / "dog" / "more.png", seed=120)
    _embed(data, cache_file)
    assert len(CacheIndex.read(cache_file).parts) == 2
    compact_cache(cache_file)
    index = CacheIndex.read(cache_file)
    assert len(index.parts) == 1 and len(index.runs) == 1 and index.parts.rows[0] == 10
    _same_as_a_fresh_cache(cache_file, data, tmp_path)


def test_a_missing_part_is_one_line_naming_it(tmp_path, data):
    cache_file = tmp_path / "c.h5"
    _embed(data, cache_file)
    (part,) = CacheIndex.read(cache_file).parts.name
    (segment_dir(cache_file) / part).unlink()
    with pytest.raises(featx.errors.CacheError, match=rf"{part}, a part of the image table, is missing") as caught:
        load_features(cache_file)
    assert "\n" not in str(caught.value)
