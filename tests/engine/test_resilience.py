"""featx embed never loses work: SIGKILL at any point then resume, concurrent runs, write errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import featx
from featx.cache.lock import CacheBusyError, cache_lock
from featx.cache.segments import segment_dir
from featx.cache.shards import list_shards
from featx.cache.store import CacheIndex
from featx.cache.verify import verify_cache
from featx.data.layouts import scan_dataset
from featx.engine.run import embed_into_cache, update_cache
from featx.errors import CacheError
from featx.options import EmbedOptions, RunOptions
from tests.imagegen import make_class_folder, write_image

pytestmark = pytest.mark.integration  # embeds with Keras backbones

OPTS = dict(weights="none", image_size=32, batch_size=4)
CLI_OPTS = ["--weights", "none", "--image-size", "32", "--batch-size", "4", "-q"]


def _embed_in_subprocess(data, cache, crash_at=None, extra=(), options=CLI_OPTS):
    env = {**os.environ, "FEATX_CACHE_DIR": str(cache)}
    if crash_at:
        env["FEATX_CRASH_AT"] = crash_at
    return subprocess.run(
        [sys.executable, "-m", "featx", "embed", str(data), *options, *extra],
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


# Every crash point of the embed path (grep -rn 'crash_point(' featx), each with the hit that kills.
# A first run embeds 10 images in batches of 4, 4, 2; a rerun embeds 6 new ones in batches of 4, 2.
CRASH_POINTS = {
    "planned": ("planned", "planned"),  # files hashed, nothing embedded yet
    "decoding": ("decoding:3", "decoding:3"),  # a decoding thread, mid-batch
    "shard-writing": ("shard-writing:1", "shard-writing:1"),  # inside a shard's HDF5 write, before its rename
    "shard-committed": ("shard-committed:3", "shard-committed:2"),  # the last batch committed as a shard
    "segment-writing": ("segment-writing:1",) * 2,  # inside the new segment file, half written
    "segment-written": ("segment-written",) * 2,  # new segment complete, not yet renamed
    "part-written": ("part-written",) * 2,  # the image table's new part complete, not yet renamed
    "index-written": ("index-written",) * 2,  # segment in place, new index complete, not yet renamed
    "committed": ("committed",) * 2,  # new index renamed (the commit), shards not yet deleted
}
ALL_SHARDS_COMMITTED = ("shard-committed", "segment-writing", "segment-written", "part-written", "index-written",
                        "committed")
SCENARIOS = ("first-run", "rerun")  # an empty cache, or a committed cache of 4 images and 6 new ones
BACKBONES = ("MobileNetV2", "custom")


def _save_tiny_backbone(path):
    import keras

    inputs = keras.Input((32, 32, 3))
    x = keras.layers.Conv2D(4, 3, kernel_initializer="glorot_uniform")(inputs)
    keras.Model(inputs, keras.layers.GlobalAveragePooling2D()(x)).save(path)
    return path


@pytest.fixture(scope="module")
def crash_matrix(tmp_path_factory):
    """``runs(backbone)``: every (scenario, crash point) of that backbone killed by SIGKILL in its
    own process, two at a time, and what its rerun needs; built once per backbone, on first use.
    The uninterrupted result is computed once per backbone, the reruns run in this process."""
    root = tmp_path_factory.mktemp("matrix")
    data = make_class_folder(root / "data", per_class=5)  # 10 images
    model = _save_tiny_backbone(root / "tiny.keras")
    options = {"MobileNetV2": (EmbedOptions("MobileNetV2", **OPTS), CLI_OPTS),
               "custom": (EmbedOptions(str(model), batch_size=4), ["--backbone", str(model), "--batch-size", "4", "-q"])}
    built: dict[str, tuple] = {}

    def runs(backbone: str):
        if backbone not in built:
            built[backbone] = _kill_every_point(root / backbone, data, *options[backbone])
        return data, built[backbone]

    return runs


def _kill_every_point(root, data, option: EmbedOptions, cli: list[str]):
    from concurrent.futures import ThreadPoolExecutor

    from featx.cache.locate import cache_path_for
    from featx.engine.extractor import FeatureExtractor

    config = option.resolve()
    extractor = FeatureExtractor(config, batch_size=4)
    dataset = scan_dataset(data)
    name = cache_path_for(root, dataset.source, config.display_name, config.fingerprint).name
    expected = _rows(_embed_here(data, config, root / "full" / name, extractor))
    late = sorted(data.rglob("*.png"))[2:8]  # the 6 files a rerun adds
    aside = root / "aside"
    aside.mkdir(parents=True)
    for path in late:  # the committed state a rerun starts from: the 4 other images
        path.rename(aside / f"{path.parent.name}-{path.name}")
    before = _rows(_embed_here(data, config, root / "before" / name, extractor))
    for path in late:
        (aside / f"{path.parent.name}-{path.name}").rename(path)

    cases = {}
    for scenario in SCENARIOS:
        for point, specs in CRASH_POINTS.items():
            cache = root / scenario / point
            cache.mkdir(parents=True)
            if scenario == "rerun":  # the committed cache: its index and its segments
                shutil.copy(root / "before" / name, cache / name)
                shutil.copytree(segment_dir(root / "before" / name), segment_dir(cache / name))
            cases[scenario, point] = (cache / name, specs[SCENARIOS.index(scenario)])

    def kill(key):
        cache_file, spec = cases[key]
        return key, _embed_in_subprocess(data, cache_file.parent, spec, options=cli)

    with ThreadPoolExecutor(2) as pool:
        killed = dict(pool.map(kill, list(cases)))
    return config, extractor, expected, before, {key: (*cases[key], killed[key]) for key in cases}


def _embed_here(data, config, cache_file, extractor):
    embed_into_cache(scan_dataset(data), config, cache_file, RunOptions(batch_size=4), extractor=extractor)
    return featx.load_features(cache_file)


@pytest.mark.timeout(600)  # the first test of a backbone builds its matrix: 18 processes killed, two at a time
@pytest.mark.parametrize("point", list(CRASH_POINTS))
@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("backbone", BACKBONES)
def test_sigkill_then_rerun_equals_an_uninterrupted_run(crash_matrix, backbone, scenario, point):
    data, (config, extractor, expected, before, cases) = crash_matrix(backbone)
    cache_file, _, result = cases[scenario, point]
    assert result.returncode == -9, result.stderr  # SIGKILL, no clean-up ran

    if cache_file.exists():  # whatever was committed is a valid cache: the old state or the new one
        assert verify_cache(cache_file)[0] == []
        committed = _rows(featx.load_features(cache_file))
        assert sorted(committed) in (sorted(before), sorted(expected))

    report = embed_into_cache(scan_dataset(data), config, cache_file, RunOptions(batch_size=4), extractor=extractor)
    assert report.cache_path == cache_file
    assert report.embedded + report.reused == 10 and report.skipped == []
    if point in ALL_SHARDS_COMMITTED:
        assert report.embedded == 0  # every batch had been committed as a shard
    rows = _rows(featx.load_features(cache_file))
    assert sorted(rows) == sorted(expected)
    for path, vector in expected.items():
        np.testing.assert_array_equal(rows[path], vector)
    assert list_shards(cache_file) == []
    assert not [p for p in cache_file.parent.iterdir() if p.name.endswith(".tmp")]
    index = CacheIndex.read(cache_file)  # no orphan segment or part of the image table is left
    listed = {*index.segments.name.tolist(), *index.parts.name.tolist()}
    assert {p.name for p in segment_dir(cache_file).iterdir()} == listed
    assert verify_cache(cache_file) == ([], [])


def test_a_views_run_killed_then_rerun_equals_an_uninterrupted_one(tmp_path, reference):
    # The plain vectors are committed first; the killed run is then the views run alone (10 images x
    # 2 views in batches of 4), killed inside its second shard. Its commit is the plain run's code
    # (cache/append.py), which the matrix above kills at every point.
    point = "shard-writing:2"
    data, _ = reference
    views = ["--views", "2", "--augment", "crop,jitter"]
    expected_cache, cache = tmp_path / "expected", tmp_path / "killed"
    featx.embed(data, "MobileNetV2", cache=expected_cache, views=2, augment="crop,jitter", **OPTS)
    featx.embed(data, "MobileNetV2", cache=cache, **OPTS)
    killed = _embed_in_subprocess(data, cache, crash_at=point, extra=["--backbone", "MobileNetV2", *views])
    assert killed.returncode == -9, killed.stderr
    rerun = _embed_in_subprocess(data, cache, extra=["--backbone", "MobileNetV2", *views, "--json"], options=[
        o for o in CLI_OPTS if o != "-q"])
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)["views"]
    assert report["embedded"] + report["reused"] == 20 and report["reused"] == 4  # the first shard was kept
    got, want = (featx.load_views(next(c.glob("*.h5"))) for c in (cache, expected_cache))
    key = lambda v: {(i, int(k)): x for i, k, x in zip(v.image_ids, v.view, v.X)}
    assert key(got).keys() == key(want).keys()
    for view, vector in key(want).items():
        np.testing.assert_array_equal(key(got)[view], vector)
    assert verify_cache(got.cache_path) == ([], [])


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
        featx.embed(data, "MobileNetV2", wait=False, **OPTS)

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
            featx.embed(data, "MobileNetV2", **OPTS)
        monkeypatch.setattr(h5py, "File", real_file)
        np.testing.assert_array_equal(featx.load_features(report.cache_path).X, before.X)
    finally:
        (data / "dog" / "late.png").unlink()
