"""featx cache verify / ls / rm."""

from __future__ import annotations

import json
import threading

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

import featx
from featx.cache.lock import cache_lock
from featx.cli import app
from tests.imagegen import make_class_folder, write_image

pytestmark = pytest.mark.integration  # embeds with Keras backbones

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


def test_a_sound_cache_verifies(cache_file):
    result = run("cache", "verify", cache_file, "--rehash")
    assert result.exit_code == 0 and result.stdout.strip() == f"{cache_file}: ok"


@pytest.mark.parametrize(
    "damage,problem",
    [
        (lambda h5: h5["vectors/features"].__setitem__((0, 3), np.nan), "1 vectors contain NaN or infinite values"),
        (lambda h5: h5["vectors/features"].__setitem__((1, 0), np.inf), "1 vectors contain NaN or infinite values"),
        (lambda h5: h5.attrs.__setitem__("config", json.dumps({"backbone": "Other"})), "fingerprint does not match"),
        (lambda h5: h5.attrs.__setitem__("feature_dim", 7), "expected (4, 7)"),
        (lambda h5: h5.attrs.__setitem__("encoding-version", 2), "written by cache schema v2; this featx reads v1"),
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


def test_truncated_file_is_not_a_traceback(cache_file):
    cache_file.write_bytes(cache_file.read_bytes()[:4096])
    result = run("cache", "verify", cache_file, "--json")
    assert result.exit_code == 1
    [entry] = json.loads(result.stdout)
    assert not entry["ok"] and "not a readable featx cache" in entry["problems"][0]


def test_rehash_finds_a_file_changed_behind_the_cache(tmp_path, cache_file):
    changed = tmp_path / "data" / "cat" / "cat_0.png"
    write_image(changed, seed=500)
    assert run("cache", "verify", cache_file).exit_code == 0  # structure is fine
    result = run("cache", "verify", cache_file, "--rehash")
    assert result.exit_code == 1 and f"{changed} changed since it was embedded" in result.stdout


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
