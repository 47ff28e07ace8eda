"""featx cache verify / ls / rm; rm deletes featx caches and nothing else."""

from __future__ import annotations

import json
import threading

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import featx
from featx.cache.lock import cache_lock, lock_path
from featx.cache.schema import ENCODING_TYPE, stamp
from featx.cache.shards import SHARD_TYPE, shard_dir
from featx.cli import app
from tests.imagegen import make_class_folder, write_image

integration = pytest.mark.integration  # embeds with Keras backbones

OPTS = dict(weights="none", image_size=32)


def run(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.fixture
def cache_file(tmp_path, cache_dir):
    data = make_class_folder(tmp_path / "data", per_class=2)
    return featx.embed(data, "MobileNetV2", **OPTS).report.cache_path


def _edit(path, fn):
    with h5py.File(path, "a") as h5:
        fn(h5)


@integration
def test_a_sound_cache_verifies(cache_file):
    result = run("cache", "verify", cache_file, "--rehash")
    assert result.exit_code == 0 and result.stdout.strip() == f"{cache_file}: ok"


@integration
@pytest.mark.parametrize(
    "damage,problem",
    [
        (lambda h5: h5["vectors/features"].__setitem__((0, 3), np.nan), "1 vectors contain NaN, infinite or absurd values"),
        (lambda h5: h5["vectors/features"].__setitem__((1, 0), np.inf), "1 vectors contain NaN, infinite or absurd values"),
        (lambda h5: h5.attrs.__setitem__("config", json.dumps({"backbone": "Other"})), "fingerprint does not match"),
        (lambda h5: h5.attrs.__setitem__("feature_dim", 7), "expected (4, 7)"),
        (lambda h5: h5.attrs.__setitem__("encoding-version", 4), "written by cache schema v4; this featx reads v1 to v3"),
        (lambda h5: h5.attrs.__setitem__("encoding-type", "anndata"), "is not a featx cache"),
        (lambda h5: h5["images/label"].__setitem__(0, 5), "outside -1..1"),
    ],
)
def test_damage_is_reported_in_one_line_and_exit_1(cache_file, damage, problem):
    _edit(cache_file, damage)
    result = run("cache", "verify", cache_file)
    assert result.exit_code == 1
    assert "PROBLEMS" in result.stdout and problem in result.stdout
    assert "Traceback" not in result.output


@integration
def test_truncated_file_is_not_a_traceback(cache_file):
    cache_file.write_bytes(cache_file.read_bytes()[:4096])
    result = run("cache", "verify", cache_file, "--json")
    assert result.exit_code == 1
    [entry] = json.loads(result.stdout)
    assert not entry["ok"] and "not a readable featx cache" in entry["problems"][0]


@integration
def test_rehash_finds_a_file_changed_behind_the_cache(tmp_path, cache_file):
    changed = tmp_path / "data" / "cat" / "cat_0.png"
    write_image(changed, seed=500)
    assert run("cache", "verify", cache_file).exit_code == 0  # structure is fine
    result = run("cache", "verify", cache_file, "--rehash")
    assert result.exit_code == 1 and f"{changed} changed since it was embedded" in result.stdout


@integration
def test_ls_and_rm(cache_file, cache_dir):
    listed = run("cache", "ls")
    assert listed.exit_code == 0 and str(cache_file) in listed.stdout and "MobileNetV2" in listed.stdout

    held, release = threading.Event(), threading.Event()

    def hold():
        with cache_lock(cache_file):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(10)
    busy = run("cache", "rm", cache_file)
    release.set()
    thread.join()
    assert busy.exit_code == 1 and "another featx run is updating" in busy.stderr and cache_file.exists()

    assert run("cache", "rm", cache_file).exit_code == 0
    assert not cache_file.exists() and list(cache_dir.iterdir()) == []
    gone = run("cache", "rm", cache_file)
    assert gone.exit_code == 1 and "No feature cache at" in gone.stderr
    assert run("cache", "rm").exit_code == 2


# ---------------------------------------------------------------- rm: featx caches only (no Keras)


def _h5(path, kind=ENCODING_TYPE):
    """A small HDF5 file marked as ``kind`` (None: no mark, as anyone's HDF5 file)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as h5:
        if kind:
            stamp(h5, kind)
        h5.create_dataset("x", data=np.arange(4000, dtype=np.float32))
    return path


def _error_lines(result):
    return [line for line in result.stderr.splitlines() if line.startswith("error: ")]


def test_rm_refuses_files_that_are_not_featx_caches_and_deletes_the_others(tmp_path):
    precious = tmp_path / "precious.docx"
    precious.write_bytes(b"PK\x03\x04 a thesis")
    weights = _h5(tmp_path / "model.weights.h5", kind=None)
    anndata = _h5(tmp_path / "cells.h5", kind="anndata")
    folder = tmp_path / "photos"
    folder.mkdir()
    cache = _h5(tmp_path / "data--MobileNetV2--abc.h5")
    result = run("cache", "rm", precious, weights, cache, anndata, folder)
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [f"deleted {cache}"] and not cache.exists()
    refused = _error_lines(result)
    assert len(refused) == 4 and len(result.stderr.splitlines()) == 4
    for path, line in zip([precious, weights, anndata, folder], refused):
        assert str(path) in line and "not a featx cache" in line and "not deleted" in line
        assert path.exists()
    assert precious.read_bytes() == b"PK\x03\x04 a thesis"


def test_rm_deletes_a_damaged_featx_cache(tmp_path):
    cache = _h5(tmp_path / "c.h5")
    cache.write_bytes(cache.read_bytes()[:4096])  # truncated: h5py cannot open it any more
    result = run("cache", "rm", cache)
    assert result.exit_code == 0 and not cache.exists()


def test_rm_deletes_shards_and_lock_left_without_a_cache_file(tmp_path):
    cache = tmp_path / "c.h5"
    shard = _h5(shard_dir(cache) / "0123.h5", kind=SHARD_TYPE)
    (shard_dir(cache) / ".4567.tmp").write_bytes(b"half a shard")
    lock_path(cache).touch()
    for target in (shard_dir(cache), lock_path(cache), cache):  # any of the three names it
        _h5(shard, kind=SHARD_TYPE)
        lock_path(cache).touch()
        result = run("cache", "rm", target)
        assert result.exit_code == 0, result.output
        assert not shard_dir(cache).exists() and not lock_path(cache).exists()
    assert list(tmp_path.iterdir()) == []


def test_rm_refuses_a_shard_folder_holding_other_files(tmp_path):
    cache = _h5(tmp_path / "c.h5")
    _h5(shard_dir(cache) / "0123.h5", kind=SHARD_TYPE)
    foreign = _h5(shard_dir(cache) / "mine.h5", kind=None)
    result = run("cache", "rm", cache)
    assert result.exit_code == 1 and cache.exists() and foreign.exists()
    [line] = _error_lines(result)
    assert str(foreign) in line and "not deleted" in line


def test_rm_refuses_a_lock_name_that_is_not_an_empty_lock(tmp_path):
    lock = tmp_path / "notes.h5.lock"
    lock.write_text("my notes")
    result = run("cache", "rm", lock)
    assert result.exit_code == 1 and lock.read_text() == "my notes"
    assert "not deleted" in _error_lines(result)[0]
