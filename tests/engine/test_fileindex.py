"""A run's image table joined to the committed one a block of rows at a time (the committed table is
never whole in memory): which images keep their ids unread, and whether the table changed."""

from __future__ import annotations

import dataclasses
import os

import numpy as np

import featx.engine.fileindex as fileindex
from featx.cache.store import CacheIndex
from featx.data.layouts import scan_dataset
from featx.engine.fileindex import index_files
from tests.cache.test_integrity_cache import _embed
from tests.imagegen import make_class_folder, write_image


def _lean(cache):
    return CacheIndex.read(cache, hold=False, hashed_ids=True, images=False)


def _index(data, previous, monkeypatch, hashed: list | None = None):
    real, hashed = fileindex.LocalFiles.sha256, [] if hashed is None else hashed
    monkeypatch.setattr(fileindex.LocalFiles, "sha256", lambda self, paths: hashed.extend(paths) or real(self, paths))
    return index_files(scan_dataset(data).root, scan_dataset(data).records, previous, 2)


def test_an_unchanged_folder_matches_the_committed_table_row_for_row_reading_no_file(tmp_path, monkeypatch):
    data = make_class_folder(tmp_path / "data", per_class=4)
    _embed(data, tmp_path / "c.h5")
    monkeypatch.setattr(fileindex, "_STAT_BLOCK", 3)  # the scan's and the committed rows, several blocks each
    hashed: list[str] = []
    table, unreadable, matched = _index(data, _lean(tmp_path / "c.h5"), monkeypatch, hashed)
    committed = CacheIndex.read(tmp_path / "c.h5").images
    assert hashed == [] and unreadable == [] and matched.same_table(table)
    assert table.id.tolist() == committed.id.tolist() and list(table.path) == committed.path.tolist()
    assert [table.take(slice(a, a + 3)).size.tolist() for a in (0, 3)] == [committed.size[:3].tolist(), committed.size[3:6].tolist()]
    blocks = list(_lean(tmp_path / "c.h5").image_blocks(rows=3))
    assert [start for start, _ in blocks] == [0, 3, 6] and sum(len(b) for _, b in blocks) == 8


def test_a_touched_a_moved_and_a_new_file_are_the_rows_that_change(tmp_path, monkeypatch):
    data = make_class_folder(tmp_path / "data", per_class=3)
    _embed(data, tmp_path / "c.h5")
    touched = sorted((data / "cat").iterdir())[0]
    os.utime(touched, ns=(1, 1))  # same bytes, another time: hashed again, the same id
    moved = sorted((data / "dog").iterdir())[0]
    moved.rename(data / "cat" / "moved.png")  # the same bytes under another path and label
    write_image(data / "dog" / "new.png", seed=9)
    hashed: list[str] = []
    table, _, matched = _index(data, _lean(tmp_path / "c.h5"), monkeypatch, hashed)
    committed = CacheIndex.read(tmp_path / "c.h5").images
    paths = list(table.path)
    assert sorted(hashed) == sorted([f"cat/{touched.name}", "cat/moved.png", "dog/new.png"])
    assert not matched.same_table(table)
    unchanged = matched.unchanged_rows(table)
    for row, path in enumerate(paths):
        expected = -1 if path in ("cat/moved.png", "dog/new.png", f"cat/{touched.name}") else committed.path.tolist().index(path)
        assert unchanged[row] == expected, path
    assert table.id[paths.index(f"cat/{touched.name}")] == committed.id[committed.path.tolist().index(f"cat/{touched.name}")]


def test_a_row_unset_before_is_unchanged_only_if_the_run_unsets_it_again(tmp_path, monkeypatch):
    """An image a run could not embed is committed with mtime -1 (hashed again next run): the next run
    that cannot embed it either leaves its row as it was; one that embeds it writes the row again."""
    data = make_class_folder(tmp_path / "data", per_class=2)
    _embed(data, tmp_path / "c.h5")
    committed = CacheIndex.read(tmp_path / "c.h5").images
    committed.mtime_ns[1] = -1
    table, _, matched = _index(data, committed, monkeypatch)
    assert matched.unchanged_rows(table).tolist() == [0, -1, 2, 3] and not matched.same_table(table)
    again = dataclasses.replace(table, mtime_ns=table.mtime_ns.copy())
    again.mtime_ns[1] = -1
    assert matched.unchanged_rows(again).tolist() == [0, 1, 2, 3] and matched.same_table(again)
    committed.label[1] = 1 - committed.label[1]  # and not if another column changed too
    _, _, matched = _index(data, committed, monkeypatch)
    assert matched.unchanged_rows(again).tolist() == [0, -1, 2, 3]
    assert np.array_equal(matched.take(np.asarray([True, False, True, True])).rows, [0, 2, 3])


def test_a_committed_table_in_the_scans_order_is_merged_and_any_other_joined_by_hashes(tmp_path, monkeypatch):
    """A run writes its table in the scan's order: merged in order, no hash of any path made. A table in
    another order (not written by a run) gives the same rows, through the hashes of the paths."""
    import featx.engine.tablematch as tablematch

    monkeypatch.setattr(tablematch, "_BLOCK", 2)
    data = make_class_folder(tmp_path / "data", per_class=3, splits=("train", "val"))
    _embed(data, tmp_path / "c.h5")
    committed = CacheIndex.read(tmp_path / "c.h5").images
    real = tablematch._ByHashes.__call__
    monkeypatch.setattr(tablematch._ByHashes, "__call__", lambda self, part: (_ for _ in ()).throw(AssertionError("hashed")))
    table, _, matched = _index(data, committed, monkeypatch)
    assert matched.same_table(table) and matched.unchanged_rows(table).tolist() == list(range(12))
    monkeypatch.setattr(tablematch._ByHashes, "__call__", real)
    shuffled = committed.take(np.asarray([5, 0, 11, 3, 1, 2, 4, 6, 10, 7, 8, 9]))
    table, _, matched = _index(data, shuffled, monkeypatch)
    assert not matched.same_table(table)  # the same rows, in another order
    assert shuffled.path[matched.unchanged_rows(table)].tolist() == list(table.path)
    assert table.id.tolist() == committed.id.tolist()
