"""A full disk while a shard is written is one line and leaves nothing behind: the shard is built in
memory and written as plain bytes, as the index is, so HDF5 never fails inside its own write (which
once crashed the process at exit with a segmentation fault after the right message)."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from featx.cache.shards import shard_dir, write_shard
from featx.errors import CacheWriteError
from tests.cache.test_integrity_cache import _embed
from tests.imagegen import make_class_folder


def _full_disk_for_shards(monkeypatch):
    real = Path.write_bytes

    def write_bytes(self, data):
        if self.name.endswith(".tmp") and self.parent.name.endswith(".shards"):
            real(self, bytes(data)[:100])  # a part lands, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)


def test_a_full_disk_while_a_shard_is_written_is_one_line_and_leaves_no_file(tmp_path, monkeypatch):
    _full_disk_for_shards(monkeypatch)
    with pytest.raises(CacheWriteError, match=r"No space left on device\); the committed cache is unchanged"):
        write_shard(tmp_path / "c.h5", "fp", [b"0" * 64], [[1.0, 2.0]])
    assert list(shard_dir(tmp_path / "c.h5").iterdir()) == []


def test_an_embed_run_on_a_full_disk_fails_in_one_line_and_a_rerun_completes(tmp_path, monkeypatch):
    data = make_class_folder(tmp_path / "data", per_class=2)
    cache = tmp_path / "c.h5"
    with monkeypatch.context() as patched:
        _full_disk_for_shards(patched)
        with pytest.raises(CacheWriteError, match="No space left on device"):
            _embed(data, cache)
    assert not cache.exists()
    report = _embed(data, cache)
    assert report.embedded == 4 and report.skipped == []
