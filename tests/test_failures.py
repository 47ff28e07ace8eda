"""Every failure is one line (issue 15's cases, each reproduced): unwritable places, a full disk
during the commit, damaged caches in every reader, absurd values, a 80,000,000x1 PNG, odd strings,
tampered heads, misuse from Python. The random counterpart is tests/property/test_fuzz.py."""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

import featx
from featx.cache.lock import lock_path
from featx.cache.segments import segment_dir, vector_segments
from featx.data.images import decode_rgb, resize_image
from featx.errors import FeatxError, FileSystemError, MissingFileError, OptionError, OptionTypeError, as_featx_error
from tests.imagegen import make_class_folder, write_image
from tests.property.test_fuzz import TinyExtractor, check_run, fingerprint_files, invoke, make_cache


@pytest.fixture(scope="module")
def valid(tmp_path_factory):
    root = tmp_path_factory.mktemp("failures")
    cache = make_cache(root / "cache" / "small.h5")
    featx.fit_head(cache, "logreg").save(root / "head")
    return cache, root / "head"


def copy_cache(cache: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(cache, folder / cache.name)
    shutil.copytree(segment_dir(cache), segment_dir(folder / cache.name))
    return folder / cache.name


# ---- the one place that turns system failures into featx errors --------------------------------

@pytest.mark.parametrize("error,kind,text", [
    (OSError(errno.EROFS, "Read-only file system", "/c/x.lock"), FileSystemError, "/c/x.lock: read-only file system"),
    (PermissionError(errno.EACCES, "Permission denied", "/h"), FileSystemError, "/h: permission denied"),
    (OSError(errno.ENOSPC, "No space left on device"), FileSystemError, "No space left on device"),
    (OSError("Unable to create file (errno = 28, error message = 'No space left on device')"), FileSystemError,
     "No space left on device"),
    (OSError(errno.ENAMETOOLONG, "File name too long", "x" * 100_000), FileSystemError, "(100000 characters): file name"),
    (FileNotFoundError(errno.ENOENT, "No such file", "/nope/plot.png"), MissingFileError, "/nope/plot.png: no such"),
    (MemoryError(), FeatxError, "out of memory"),
    (ValueError("embedded null byte"), OptionError, "NUL byte"),
])
def test_system_failures_become_one_line_featx_errors(error, kind, text):
    converted = as_featx_error(error)
    assert isinstance(converted, kind) and text in str(converted) and "\n" not in str(converted)
    assert len(str(converted)) < 400


def test_anything_else_is_one_line_saying_it_is_a_bug(monkeypatch, valid):
    cache, _ = valid
    monkeypatch.setattr("featx.cli.cache.summarize", lambda path: {}["boom"])
    result = invoke("cache", "info", cache)
    assert result.exit_code == 1 and result.stderr.count("\n") == 1 and "unexpected KeyError" in result.stderr


def test_usage_errors_are_one_line():
    for args in (["embed", "x", "--seed", "abc"], ["cache", "info", "--bogus"], ["embed"], ["embed", ""]):
        result = invoke(*args)
        assert result.exit_code == 2 and result.stderr.startswith("error: ") and result.stderr.count("\n") == 1


# ---- odd strings ----------------------------------------------------------------------------

@pytest.mark.parametrize("args", [
    ["cache", "info", "x" * 100_000], ["fit-head", "--cache", "x" * 100_000],
    ["evaluate", "x" * 100_000], ["embed", "x" * 100_000],
])
def test_a_100000_character_path_is_one_line(args):
    result = invoke(*args)
    check_run(result, allow=(1, 2))
    assert result.exit_code != 0 and len(result.stderr) < 600


def test_a_nul_byte_in_a_manifest_names_the_row(tmp_path):
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\na.png,cat\nb\x00.png,dog\n")
    result = invoke("embed", manifest, "--weights", "none")
    check_run(result, allow=(1,))
    assert f"manifest {manifest} row 3: the path holds a NUL byte" in result.stderr


def test_writing_into_a_missing_or_impossible_folder_is_one_line(valid, tmp_path):
    cache, head = valid
    (tmp_path / "file").write_text("not a folder")
    check_run(invoke("evaluate", head, "--cache", cache, "--split", "all", "--plot", tmp_path / "no" / "c.png"), allow=(0, 1))
    result = invoke("fit-head", "--cache", cache, "--output", tmp_path / "file" / "head")
    check_run(result, allow=(1,))
    assert str(tmp_path / "file") in result.stderr


# ---- damaged caches: one validation on open, in every reader --------------------------------

def _drop(name):
    return lambda h5: h5.__delitem__(name)


def _retype(name, data):
    def edit(h5):
        del h5[name]
        h5.create_dataset(name, data=data)
    return edit


def _attr(key, value):
    return lambda h5: h5.attrs.__setitem__(key, value)


DAMAGES = {
    "no /images/path": (_drop("images/path"), "/images/path is missing"),
    "empty groups": (lambda h5: [h5.__delitem__(f"images/{k}") for k in list(h5["images"])], "is missing"),
    "encoding-version abc": (_attr("encoding-version", "abc"), "encoding-version 'abc' is not a number"),
    "config not JSON": (_attr("config", "{not json"), "is not JSON"),
    "classes as integers": (_retype("classes", np.arange(2)), "/classes holds int64 values, not text"),
    "labels out of range": (lambda h5: h5["images/label"].__setitem__(0, 9), "/images/label holds values outside"),
    "fewer rows than ids": (lambda h5: h5["segments/rows"].__setitem__(0, 5), "the segments hold 5 rows"),
}


@pytest.mark.parametrize("name", sorted(DAMAGES))
def test_a_damaged_cache_is_the_same_one_line_in_every_reader(valid, tmp_path, name):
    cache, head = valid
    damage, problem = DAMAGES[name]
    damaged = copy_cache(cache, tmp_path / "c")
    with h5py.File(damaged, "r+") as h5:
        damage(h5)
    for args in (["cache", "info", damaged], ["fit-head", "--cache", damaged, "-o", tmp_path / "h"],
                 ["evaluate", head, "--cache", damaged]):
        result = invoke(*args)
        check_run(result, allow=(1,))
        assert problem in result.stderr, (args, result.stderr)
    verify = invoke("cache", "verify", damaged)
    assert verify.exit_code == 1 and problem in verify.stdout


def test_nan_vectors_are_refused_by_evaluate_in_one_line(valid, tmp_path):
    cache, head = valid
    damaged = copy_cache(cache, tmp_path / "c")
    with h5py.File(vector_segments(damaged)[0], "r+") as h5:
        h5["features"][3, 0] = np.nan
    result = invoke("evaluate", head, "--cache", damaged)
    check_run(result, allow=(1,))
    assert "NaN" in result.stderr


# ---- absurd values ---------------------------------------------------------------------------

@pytest.mark.parametrize("args,message", [
    (["--batch-size", "1000000000000"], "--batch-size must be an integer from 1 to 65536"),
    (["--image-size", "10000"], "--image-size must be a number of pixels from 1 to 4096"),
    (["--seed", "-1"], "--seed must be an integer from 0 to 4294967295"),
    (["--seed", "4294967296"], "--seed must be an integer from 0 to 4294967295"),
    (["--image-size", "4000"], "--batch-size 32 of 4000x4000 images needs about"),
])
def test_absurd_embed_values_are_refused_up_front(tmp_path, monkeypatch, args, message):
    monkeypatch.setattr("featx.engine.extractor.FeatureExtractor", lambda *a, **k: pytest.fail("must not build"))
    data = make_class_folder(tmp_path / "data", per_class=1)
    result = invoke("embed", data, "--weights", "none", "--cache", tmp_path / "cache", *args)
    assert result.exit_code == 2 and message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "cache").exists()


def test_a_batch_that_cannot_fit_in_memory_is_refused_with_the_largest_that_fits():
    from featx.options import check_batch_memory

    check_batch_memory(32, 224, memory=16 * 2**30)
    with pytest.raises(OptionError, match=r"more than half of this machine's 1.0 GiB of RAM; give at most 27\."):
        check_batch_memory(32, 224, memory=2**30)


def test_knn_neighbours_beyond_the_training_vectors_and_bad_seeds_are_named(valid):
    cache, _ = valid
    result = invoke("fit-head", "--cache", cache, "--head", "knn", "-p", "n_neighbors=1000")
    assert result.exit_code == 2 and "n_neighbors=1000 of the knn head is more than the" in result.stderr
    for seed in ("-1", "4294967296"):
        assert invoke("fit-head", "--cache", cache, "--seed", seed).exit_code == 2


# ---- one huge image costs only its own skip -----------------------------------------------

def test_an_80000000x1_png_is_resized_without_a_huge_allocation_or_skipped(tmp_path):
    from PIL import Image

    path = tmp_path / "wide.png"
    Image.new("RGB", (80_000_000, 1), (200, 10, 10)).save(path)
    assert path.stat().st_size < 300_000
    pixels = decode_rgb(path)  # 80,000,000 pixels: under --max-pixels
    stretched = resize_image(pixels, (32, 32), "stretch")  # columns first: a few MB, not 28.6 GiB
    assert stretched.shape == (32, 32, 3) and np.allclose(stretched[..., 0], 200)
    assert resize_image(pixels, (32, 32), "crop").shape == (32, 32, 3)
    with pytest.raises(featx.errors.ImageDecodeError, match="image too large to pad"):
        resize_image(pixels, (32, 32), "pad")  # an 80,000,000-pixel square: refused before allocating


# ---- tampered head.json ---------------------------------------------------------------------

@pytest.mark.parametrize("field,value", [("feature_dim", "abc"), ("fit_seconds", [1]), ("classes", ["ant"]),
                                         ("feature_dim", 7), ("classes", [1, 2])])
def test_a_tampered_head_json_is_not_a_readable_featx_head(valid, tmp_path, field, value):
    from featx.heads.headfile import content_checksum

    cache, head = valid
    shutil.copytree(head, tmp_path / "h")
    meta = json.loads((tmp_path / "h" / "head.json").read_text())
    meta[field] = value
    meta["checksum"] = content_checksum(meta)  # re-signed: the checks on content must catch it
    (tmp_path / "h" / "head.json").write_text(json.dumps(meta))
    result = invoke("evaluate", tmp_path / "h", "--cache", cache)
    check_run(result, allow=(1,))
    assert "not a readable featx head" in result.stderr


# ---- misuse from Python fails at the boundary, naming the parameter ------------------------

@pytest.mark.parametrize("call,param", [
    (lambda: featx.embed(123), "data"), (lambda: featx.embed(""), "data"),
    (lambda: featx.embed("d", backbone=None), "backbone"), (lambda: featx.embed("d", cache=5), "cache"),
    (lambda: featx.load_features(None), "cache"), (lambda: featx.fit_head(None), "features"),
    (lambda: featx.load_head(5), "head"), (lambda: featx.evaluate_head(None), "head"),
    (lambda: featx.predict_images(None, []), "head"), (lambda: featx.compare_heads(5), "caches"),
    (lambda: featx.compare_heads(["c.h5"], heads="logreg"), "heads"), (lambda: featx.get_backbone(5), "backbone"),
    (lambda: featx.fit_head("c.h5", seed=-1), "seed"),
])
def test_misuse_from_python_names_the_parameter(call, param):
    with pytest.raises(OptionError) as raised:
        call()
    assert raised.value.param == param and f"'{param}' parameter" in str(raised.value)
    if "must be a" in str(raised.value) and "path" in str(raised.value):
        assert isinstance(raised.value, (TypeError, OptionError))


@pytest.mark.parametrize("top_k,misclassified,param", [(0, 10, "top_k"), (-3, 10, "top_k"), (5, -1, "misclassified")])
def test_evaluate_head_refuses_a_top_k_below_one_and_negative_mistake_counts(valid, top_k, misclassified, param):
    cache, head = valid
    with pytest.raises(OptionError) as raised:
        featx.evaluate_head(featx.load_head(head), cache, top_k=top_k, misclassified=misclassified)
    assert raised.value.param == param
    result = invoke("evaluate", head, "--cache", cache, "--top-k", "0")
    check_run(result, allow=(2,))
    assert "--top-k" in result.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
def test_a_fifo_named_like_an_image_is_listed_as_skipped_not_left_out(tmp_path, tiny_backbone):
    data = make_class_folder(tmp_path / "data", per_class=2, size=(12, 10))
    os.mkfifo(data / "cat" / "x.jpg")  # opening it would block: the run must only stat it
    result = invoke("embed", data, "--weights", "none", "--image-size", "32", "--cache", tmp_path / "cache", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["embedded"] == 4
    assert [(Path(s["path"]).name, s["reason"]) for s in report["skipped"]] == [("x.jpg", "not a regular file")]


def test_wrong_types_are_type_errors_too():
    with pytest.raises(TypeError):
        featx.load_features(None)
    assert issubclass(OptionTypeError, TypeError) and issubclass(OptionTypeError, ValueError)


# ---- unwritable places and a full disk --------------------------------------------------------

@pytest.fixture
def tiny_backbone(monkeypatch):
    """No Keras: the backbone is the part these tests do not exercise."""
    monkeypatch.setattr("featx.engine.extractor.FeatureExtractor", TinyExtractor)


def _read_only(folder: Path):
    """Make ``folder`` read-only for this process: a read-only bind mount as root, chmod otherwise."""
    if os.geteuid() != 0:
        for path in [folder, *folder.rglob("*")]:
            path.chmod(0o555 if path.is_dir() else 0o444)
        return lambda: [p.chmod(0o755) for p in [folder, *folder.rglob("*")] if p.is_dir()]
    done = subprocess.run(["mount", "--bind", str(folder), str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot make a read-only mount here")
    if subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], capture_output=True).returncode != 0:
        subprocess.run(["umount", str(folder)])
        pytest.skip("cannot make a read-only mount here")
    return lambda: subprocess.run(["umount", str(folder)], check=True)


def test_a_read_only_cache_is_reused_without_a_lock_and_new_work_is_one_line(tmp_path, tiny_backbone):
    data = make_class_folder(tmp_path / "data", per_class=2, size=(12, 10))
    cache = tmp_path / "cache"
    assert invoke("embed", data, "--weights", "none", "--image-size", "32", "--cache", cache, "-q").exit_code == 0
    [index] = cache.glob("*.h5")
    lock_path(index).unlink()
    before = fingerprint_files(index)
    undo = _read_only(cache)
    try:
        reused = invoke("embed", data, "--weights", "none", "--image-size", "32", "--cache", cache, "--json")
        assert reused.exit_code == 0, reused.output
        assert json.loads(reused.stdout)["reused"] == 4 and not lock_path(index).exists()
        write_image(data / "cat" / "new.png", seed=77)
        refused = invoke("embed", data, "--weights", "none", "--image-size", "32", "--cache", cache, "-q")
        check_run(refused, allow=(1,))
        assert "is not writable" in refused.stderr and "--cache" in refused.stderr
    finally:
        undo()
    assert fingerprint_files(index) == before


def test_disk_full_while_the_index_is_replaced_keeps_the_committed_cache(valid, tmp_path, monkeypatch):
    cache, _ = valid
    copy = copy_cache(cache, tmp_path / "c")
    before = fingerprint_files(copy)
    real = Path.write_bytes

    def full(self, data):  # the index temporary hits a full disk (as on a small tmpfs)
        if self.name.startswith(f".{copy.name}.") and self.name.endswith(".tmp"):
            real(self, bytes(data)[:100])
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", full)
    result = invoke("cache", "compact", copy)  # a commit: new segment, then the index
    check_run(result, allow=(1,))
    assert "No space left on device" in result.stderr and "the committed cache is unchanged" in result.stderr
    assert fingerprint_files(copy) == before  # no temporary, no unlisted segment, the same bytes
    assert sorted(p.name for p in copy.parent.iterdir()) == sorted([copy.name, segment_dir(copy).name,
                                                                   lock_path(copy).name])


@pytest.mark.integration
def test_a_real_full_disk_during_the_commit_is_one_line_in_a_subprocess(tmp_path):
    """A 4 MiB tmpfs filled so that the run's segment fits and its image-table part or its index does
    not (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "small"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        cache = make_cache(mount / "cache" / "small.h5")
        before = fingerprint_files(cache)
        stat = os.statvfs(mount)
        free = stat.f_bavail * stat.f_frsize
        room = vector_segments(cache)[0].stat().st_size + 4096  # the new segment, not the part and index after it
        (mount / "filler").write_bytes(b"\0" * (free - room))
        done = subprocess.run([sys.executable, "-m", "featx", "cache", "compact", str(cache)], capture_output=True,
                              text=True, timeout=120)
        lines = done.stderr.strip().splitlines()
        assert done.returncode == 1 and len(lines) == 1 and "No space left on device" in lines[0], done.stderr
        assert f"in {cache.parent}" in lines[0]  # the write that failed names its folder (the cache's, or its segments')
        assert fingerprint_files(cache) == before
        assert not [p for p in cache.parent.rglob(".*.tmp")]
    finally:
        subprocess.run(["umount", str(mount)])
