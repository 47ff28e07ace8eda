"""A lean index (what load_features reads: paths packed, the vectors' ids as hashes) joins images to
the same vectors as the full index, a hash match never standing in for an id match."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest

import featx
import featx.cache.store as store
import featx.cache.vectorids as vectorids
from featx.cache.append import write_cache
from featx.cache.store import CacheIndex, read_vectors, vector_rows
from featx.cache.tables import ImageTable, SkipTable, id_column, rows_of, str_column
from featx.cache.vectorids import repeated_ids
from featx.data.packed import PackedStrings
from featx.options import EmbedOptions

CONFIG = EmbedOptions("MobileNetV2", weights="none", image_size=32).resolve()
WIDTH = 6


def make_cache(path, n=40, ids=None, vector_ids=None):
    """A cache whose vectors are stored in another order than its images (row i's vector: i + 0.5)."""
    ids = ids or [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]
    vector_ids = vector_ids or ids[::-1]
    X = np.asarray([[ids.index(v) + 0.5] * WIDTH for v in vector_ids], np.float32)
    images = ImageTable(path=str_column(f"c{i % 2}/ïmg{i}.png" for i in range(len(ids))), id=id_column(ids),
                        label=(np.arange(len(ids)) % 2).astype(np.int32), split=str_column(["train"] * len(ids)),
                        size=np.zeros(len(ids), np.int64), mtime_ns=np.zeros(len(ids), np.int64))
    attrs = {"fingerprint": CONFIG.fingerprint, "config": json.dumps(CONFIG.identity()),
             "sources": json.dumps(CONFIG.sources()), "backbone": CONFIG.backbone, "root": str(path.parent),
             "layout": "classes", "feature_dim": WIDTH}
    write_cache(path, attrs=attrs, classes=["a", "b"], images=images, skipped=SkipTable.empty(),
                vectors=[(id_column(vector_ids), X)], feature_dim=WIDTH)
    return path


def test_a_lean_index_joins_as_the_full_one(tmp_path, monkeypatch):
    monkeypatch.setattr(vectorids, "_ID_BLOCK", 7)  # the ids checked a few blocks at a time
    cache = make_cache(tmp_path / "c.h5")
    full, lean = CacheIndex.read(cache), CacheIndex.read(cache, packed_paths=True, hashed_ids=True)
    assert lean.vector_ids is None and lean.vector_count == len(full.vector_ids) == 40
    assert isinstance(lean.images.path, PackedStrings) and lean.images.path.tolist() == full.images.path.tolist()
    expected = rows_of(full.vector_ids, full.images.id)
    assert (vector_rows(lean) == expected).all() and (vector_rows(full) == expected).all()
    assert sorted(expected.tolist()) == list(range(40))


def test_features_read_through_a_lean_index_pair_each_image_with_its_vector(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "_READ_BYTES", 3 * 4 * WIDTH)  # three vectors a read
    cache = make_cache(tmp_path / "c.h5")
    features = featx.load_features(cache)
    assert features.X[:, 0].tolist() == [i + 0.5 for i in range(40)]
    assert features.paths.tolist() == [str(tmp_path / f"c{i % 2}/ïmg{i}.png") for i in range(40)]
    assert features.subset(np.array([3, 1])).paths.tolist() == [str(tmp_path / "c1/ïmg3.png"),
                                                                 str(tmp_path / "c1/ïmg1.png")]


def test_vectors_are_read_in_any_order_with_repeats_a_block_at_a_time(tmp_path, monkeypatch):
    cache = make_cache(tmp_path / "c.h5")
    index = CacheIndex.read(cache)
    rows = np.random.default_rng(0).integers(0, 40, 100)
    whole = read_vectors(index, np.arange(40))
    monkeypatch.setattr(store, "_READ_BYTES", 5 * 4 * WIDTH)
    assert np.array_equal(read_vectors(index, rows), whole[rows])
    assert read_vectors(index, np.zeros(0, np.int64)).shape == (0, WIDTH)


def first_letter_hash(ids):
    """A hash that collides whenever two ids begin alike."""
    return np.asarray([ord(bytes(i)[:1] or b"\0") for i in ids], np.uint64)


def test_a_hash_match_with_another_id_is_no_match(tmp_path, monkeypatch):
    monkeypatch.setattr(vectorids, "id_hashes", first_letter_hash)
    vector_ids = ["a" * 64, "b" * 64]
    cache = make_cache(tmp_path / "c.h5", ids=vector_ids, vector_ids=vector_ids)
    index = CacheIndex.read(cache, packed_paths=True, hashed_ids=True)
    index.images = index.images.take(np.array([0, 1, 1]))
    index.images.id = id_column(["a" * 64, "b" * 64, "b" + "c" * 63])  # the third: b's hash, not b's id
    index.image_rows = None  # joined again, for this table
    assert vector_rows(index).tolist() == [0, 1, -1]


def test_vectors_that_share_a_hash_are_joined_by_their_ids(tmp_path, monkeypatch):
    monkeypatch.setattr(vectorids, "id_hashes", lambda ids: np.zeros(len(ids), np.uint64))
    cache = make_cache(tmp_path / "c.h5", n=10)
    index = CacheIndex.read(cache, packed_paths=True, hashed_ids=True)  # its checks: the shared hash is no repeated id
    assert vector_rows(index).tolist() == list(range(10))[::-1]
    assert featx.load_features(cache).X[:, 0].tolist() == [i + 0.5 for i in range(10)]


def test_a_repeated_vector_id_is_found_in_a_lean_index(tmp_path):
    cache = make_cache(tmp_path / "c.h5", n=6)
    index = CacheIndex.read(cache, packed_paths=True, hashed_ids=True)
    assert not repeated_ids(None, index.vector_hashes, index.all_vector_ids)
    shared = index.vector_hashes[[0, 0, 1, 2, 3, 4]]  # a shared hash: the ids decide
    assert not repeated_ids(None, shared, index.all_vector_ids)
    assert repeated_ids(None, shared, lambda: id_column(["a" * 64] * 2 + ["b" * 64] * 4))


@pytest.mark.parametrize("lean", [False, True])
def test_an_empty_cache_reads(tmp_path, lean):
    cache = make_cache(tmp_path / "c.h5", n=1)
    index = CacheIndex.read(cache, packed_paths=lean, hashed_ids=lean)
    index.images = index.images.take(np.zeros(0, np.int64))
    index.image_rows = None
    assert vector_rows(index).tolist() == []
