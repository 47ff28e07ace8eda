"""Issue 31: the Features of a cache hold compact columns (the ids' bytes, the cache's relative paths),
and still read as NumPy arrays of str, row for row what the cache says, through subset, where_split
and replace."""

from __future__ import annotations

import dataclasses
import os
import tracemalloc

import h5py
import numpy as np
import pytest

from featx.cache.store import CacheIndex
from featx.errors import CacheError
from featx.features.vectors import Features, content_ids, count_unusable, load_features, paths_at
from featx.heads import fit_head
from tests.property.test_fuzz import make_cache


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return make_cache(tmp_path_factory.mktemp("compact") / "cache" / "c.h5", n=40)


def _expected(cache) -> tuple[list[str], list[str], list[str]]:
    index = CacheIndex.read(cache, hold=False)
    root = str(index.attrs["root"])
    return ([os.path.join(root, p) for p in index.images.path], [i.decode() for i in index.images.id],
            list(index.images.split))


@pytest.mark.parametrize("lazy", [False, True])
def test_a_cache_s_paths_ids_and_splits_read_as_arrays_of_str_row_for_row(cache, lazy):
    paths, ids, split = _expected(cache)
    features = load_features(cache, lazy=lazy)
    for column, expected in ((features.paths, paths), (features.ids, ids), (features.split, split)):
        assert isinstance(column, np.ndarray) and column.dtype == object and len(column) == len(features)
        assert column.tolist() == expected and all(type(v) is str for v in column)
    assert features.paths is features.paths  # built once, then kept
    assert os.path.isabs(features.paths[3]) and features.ids[3] == ids[3]


@pytest.mark.parametrize("materialised_first", [False, True])
def test_subset_and_where_split_keep_every_column_in_step(cache, materialised_first):
    features = load_features(cache)
    paths, ids, split = _expected(cache)
    if materialised_first:
        assert len(features.paths) == len(features.ids) == 40
    rows = np.asarray([5, 0, 7, 7, 39])
    part = features.subset(rows)
    assert part.paths.tolist() == [paths[r] for r in rows]
    assert part.ids.tolist() == [ids[r] for r in rows]
    assert part.split.tolist() == [split[r] for r in rows]
    np.testing.assert_array_equal(part.X, np.asarray(features.X)[rows])
    test = features.where_split("test")
    chosen = [r for r in range(40) if split[r] == "test"]
    assert test.paths.tolist() == [paths[r] for r in chosen] and test.ids.tolist() == [ids[r] for r in chosen]
    mask = np.arange(40) % 3 == 0
    assert features.subset(mask).ids.tolist() == [ids[r] for r in range(40) if mask[r]]


def test_replaced_and_dataclasses_replace_give_the_same_features(cache):
    features = load_features(cache)
    for changed in (features.replaced(y=features.y * 0), dataclasses.replace(features, y=features.y * 0),
                    Features(**{**features.__dict__, "y": features.y * 0})):
        assert not changed.y.any()
        assert changed.paths.tolist() == features.paths.tolist() and changed.ids.tolist() == features.ids.tolist()
        assert changed.cache_path == features.cache_path and changed.classes == features.classes


def test_content_ids_sort_as_ids_and_paths_at_reads_the_rows_asked(cache):
    features = load_features(cache)
    raw = content_ids(features)
    assert raw.dtype.kind == "S" and [i.decode() for i in raw] == features.ids.tolist()
    np.testing.assert_array_equal(np.argsort(raw, kind="stable"), np.argsort(features.ids, kind="stable"))
    fresh = load_features(cache)
    assert paths_at(fresh, [4, 1]) == [features.paths[4], features.paths[1]] and paths_at(fresh, 2) == [features.paths[2]]
    assert paths_at(features, 2) == [features.paths[2]]  # built already: the same rows
    built = Features(X=np.zeros((3, 2), np.float32), y=np.zeros(3, np.int64), classes=("a",),
                     paths=np.asarray(["/x/é.png", "/x/b.png", "/x/a.png"], object),
                     ids=np.asarray(["ü", "b", "a"], object), split=np.asarray(["", "", ""], object))
    assert content_ids(built).tolist() == ["ü".encode(), b"b", b"a"]  # UTF-8 bytes sort as the str do
    np.testing.assert_array_equal(np.argsort(content_ids(built)), np.argsort(built.ids))
    assert paths_at(built, [2, 0]) == ["/x/a.png", "/x/é.png"] and paths_at(built, 1) == ["/x/b.png"]


def test_a_cache_s_features_hold_bytes_per_image_not_python_strings(tmp_path):
    n = 4000
    cache = make_cache(tmp_path / "cache" / "big.h5", n=n)
    tracemalloc.start()
    try:
        features = load_features(cache)
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_image = (held - features.X.nbytes) / n
    assert per_image < 200, per_image  # a str per path and per id cost ~240 bytes an image
    assert features.paths[n - 1].endswith(f"img{n - 1}.png")


def test_unusable_vectors_are_counted_by_blocks_and_refused_by_a_head_that_loads_them(tmp_path):
    X = np.ones((10, 3), np.float32)
    X[[2, 9], 1] = [np.nan, 3e38]
    assert count_unusable(X, block=4) == 2 and count_unusable(X[:0]) == 0
    cache = make_cache(tmp_path / "cache" / "bad.h5")
    with h5py.File(cache, "r+") as h5:
        h5["vectors/features"][1, 0] = np.inf
    with pytest.raises(CacheError, match="NaN, infinite or absurd values"):
        fit_head(cache, "logreg")
