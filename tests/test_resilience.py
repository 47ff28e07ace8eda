"""featx embed never loses work: SIGKILL at any point then resume, concurrent runs, write errors."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import featx
from featx.embedding import update_cache
from featx.options import EmbedOptions
from featx.cache.lock import CacheBusyError, cache_lock
from featx.cache.shards import list_shards
from featx.cache.verify import verify_cache
from featx.errors import CacheError
from tests.imagegen import make_class_folder, write_image

pytestmark = pytest.mark.integration  # embeds with Keras backbones

OPTS = dict(weights="none", image_size=32, batch_size=4)
CLI_OPTS = ["--weights", "none", "--image-size", "32", "--batch-size", "4", "-q"]


def _embed_in_subprocess(data, cache, crash_at=None, extra=()):
    env = {**os.environ, "FEATX_CACHE_DIR": str(cache)}
    if crash_at:
        env["FEATX_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "featx", "embed", str(data), *CLI_OPTS, *extra],
        env=env, capture_output=True, text=True, timeout=300,
    )


def _rows(features):
    return {p: x for p, x in zip(features.paths, features.X)}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A dataset of 3 batches and the features of an uninterrupted run."""
    root = tmp_path_factory.mktemp("resilience")
    data = make_class_folder(root / "data", per_class=5)  # 10 images: batches of 4, 4, 2
    features = featx.embed(data, "MobileNetV2", cache=root / "reference", **OPTS)
    return data, _rows(features)


CRASH_POINTS = [
    "planned",  # files hashed, nothing embedded yet
    "decoding:6",  # a decoding thread, mid-batch
    "shard-writing:1",  # inside the first shard's HDF5 write, before its rename
    "shard-committed:2",  # two batches committed as shards
    "consolidate-writing:1",  # inside the new cache file, half written
    "consolidate-written",  # new cache file complete, not yet renamed over the old
    "consolidate-committed",  # renamed, shards not yet deleted
]


@pytest.mark.parametrize("crash_at", CRASH_POINTS)
def test_sigkill_then_rerun_equals_an_uninterrupted_run(tmp_path, monkeypatch, reference, crash_at):
    data, expected = reference
    cache = tmp_path / "cache"
    killed = _embed_in_subprocess(data, cache, crash_at)
    assert killed.returncode == -9, killed.stderr  # SIGKILL, no clean-up ran

    committed = [p for p in cache.glob("*.h5")] if cache.exists() else []
    for path in committed:  # whatever was committed is a valid cache
        assert verify_cache(path)[0] == []

    monkeypatch.setenv("FEATX_CACHE_DIR", str(cache))
    resumed = featx.embed(data, "MobileNetV2", **OPTS)
    report = resumed.report
    assert report.embedded + report.reused == 10 and report.skipped == []
    if crash_at.startswith("consolidate"):
        assert report.embedded == 0  # every batch had been committed as a shard
    rows = _rows(resumed)
    assert len(resumed) == 10 and sorted(rows) == sorted(expected)
    for path, vector in expected.items():
        np.testing.assert_array_equal(rows[path], vector)
    assert list_shards(report.cache_path) == []
    assert not [p for p in cache.iterdir() if p.name.endswith(".tmp")]
    assert verify_cache(report.cache_path) == ([], [])


def test_a_killed_update_leaves_the_previous_cache_readable(tmp_path, monkeypatch, reference):
    data, expected = reference
    cache = tmp_path / "cache"
    monkeypatch.setenv("FEATX_CACHE_DIR", str(cache))
    before = featx.embed(data, "MobileNetV2", **OPTS)
    report = before.report

    write_image(data / "cat" / "late.png", seed=999)
    try:
        killed = _embed_in_subprocess(data, cache, "consolidate-writing:1")
        assert killed.returncode == -9
        during = featx.load_features(report.cache_path)  # a reader sees the last committed state
        assert len(during) == 10
        np.testing.assert_array_equal(during.X, before.X)
        after = featx.embed(data, "MobileNetV2", **OPTS)
        again = after.report
        assert (again.embedded, again.reused) == (0, 11)
    finally:
        (data / "cat" / "late.png").unlink()


def test_a_second_run_waits_for_the_lock_or_stops_with_no_wait(tmp_path, monkeypatch, reference):
    data, _ = reference
    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path / "cache"))
    report = featx.embed(data, "MobileNetV2", **OPTS).report

    held, release = threading.Event(), threading.Event()

    def hold() -> None:  # another writer, in another thread
        with cache_lock(report.cache_path):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(10)
    with pytest.raises(CacheBusyError, match="another featx run is updating"):
        featx.embed(data, "MobileNetV2", wait=False, **OPTS).report

    said: list[str] = []
    threading.Timer(1.0, release.set).start()
    started = time.monotonic()
    again = update_cache(data, EmbedOptions("MobileNetV2", **OPTS), on_wait=said.append)
    holder.join()
    assert time.monotonic() - started >= 0.9
    assert again.reused == 10 and "waiting for it to finish" in said[0]


def test_a_lock_held_by_a_killed_process_does_not_block(tmp_path):
    cache_file = tmp_path / "c.h5"
    code = (
        "import os, signal; from featx.cache.lock import cache_lock\n"
        f"with cache_lock({str(cache_file)!r}):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == -9
    with cache_lock(cache_file, wait=False):  # acquired at once
        pass


def test_two_concurrent_embeds_leave_one_complete_cache(tmp_path, reference):
    data, expected = reference
    cache = tmp_path / "cache"
    env = {**os.environ, "FEATX_CACHE_DIR": str(cache)}
    command = [sys.executable, "-m", "featx", "embed", str(data), *CLI_OPTS, "--json"]
    runs = [subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    caches = list(cache.glob("*.h5"))
    assert len(caches) == 1 and verify_cache(caches[0]) == ([], [])
    rows = _rows(featx.load_features(caches[0]))
    assert sorted(rows) == sorted(expected)
    for path, vector in expected.items():
        np.testing.assert_array_equal(rows[path], vector)


def test_disk_full_is_one_clear_error_and_keeps_the_committed_cache(tmp_path, monkeypatch, reference):
    import h5py

    data, _ = reference
    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path / "cache"))
    before = featx.embed(data, "MobileNetV2", **OPTS)
    report = before.report
    write_image(data / "dog" / "late.png", seed=1234)
    real_file = h5py.File

    def full_disk(name, mode="r", *args, **kwargs):
        if mode == "w":
            raise OSError(28, "No space left on device")
        return real_file(name, mode, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", full_disk)
    try:
        with pytest.raises(CacheError, match=r"No space left on device\); the committed cache is unchanged"):
            featx.embed(data, "MobileNetV2", **OPTS).report
        monkeypatch.setattr(h5py, "File", real_file)
        np.testing.assert_array_equal(featx.load_features(report.cache_path).X, before.X)
    finally:
        (data / "dog" / "late.png").unlink()
