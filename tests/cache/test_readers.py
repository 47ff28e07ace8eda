"""Readers and removers agree: a lazy or streaming reader keeps every segment its index lists
readable while a compact or an embed replaces them; the segments go once no reader holds them."""

from __future__ import annotations

import gc
import pickle

import numpy as np

from featx.cache.append import compact_cache
from featx.cache.segments import vector_segments
from featx.cache.store import CacheIndex
from featx.features.vectors import load_features
from tests.engine.test_loose_files import _embed
from tests.imagegen import write_image


def _two_segments(tmp_path):
    cache = tmp_path / "files.h5"
    _embed([write_image(tmp_path / f"a{i}.png", seed=300 + i) for i in range(3)], cache)
    _embed([write_image(tmp_path / f"b{i}.png", seed=400 + i) for i in range(2)], cache)
    assert len(CacheIndex.read(cache).segments) == 2
    return cache


def _segment_files(cache) -> set[str]:
    return {p.name for p in vector_segments(cache)}


def test_a_lazy_reader_reads_through_a_compact_and_its_segments_go_after_it(tmp_path):
    cache = _two_segments(tmp_path)
    expected = load_features(cache).X
    lazy = load_features(cache, lazy=True)
    old = _segment_files(cache)
    compact_cache(cache)
    listed = set(CacheIndex.read(cache).segments.name.tolist())
    assert len(listed) == 1 and old <= _segment_files(cache)  # the reader's segments are kept for it
    assert np.array_equal(np.asarray(lazy.X), expected)  # and it reads what it opened, not an error
    assert np.array_equal(np.concatenate(list(lazy.X.batches(2))), expected)  # streaming too
    del lazy
    gc.collect()
    compact_cache(cache)  # the next run under the lock sweeps what the reader kept
    assert _segment_files(cache) == set(CacheIndex.read(cache).segments.name.tolist())
    assert np.array_equal(load_features(cache).X, expected)


def test_without_readers_a_compact_deletes_the_merged_segments_at_once(tmp_path):
    cache = _two_segments(tmp_path)
    load_features(cache)  # an eager read holds nothing once it returns
    compact_cache(cache)
    assert _segment_files(cache) == set(CacheIndex.read(cache).segments.name.tolist())
    assert len(_segment_files(cache)) == 1


def test_an_index_read_with_hold_false_holds_nothing_and_a_held_one_pickles_without_its_lock(tmp_path):
    cache = _two_segments(tmp_path)
    held = CacheIndex.read(cache)
    assert held.hold is not None and CacheIndex.read(cache, hold=False).hold is None
    assert pickle.loads(pickle.dumps(held)).hold is None  # a lock does not travel to another process
    compact_cache(cache)
    assert len(_segment_files(cache)) == 3  # held: kept
    held.hold.release()
    compact_cache(cache)
    assert len(_segment_files(cache)) == 1
