"""Decoding in worker processes: same pixels, order and failure reasons as load_image, batches in a
shared buffer, a killed worker is one clear error and a rerun resumes; JPEG draft decoding."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from featx.data.images import load_image
from featx.engine.decode import decode_batches
from featx.engine.pixels import DecodeSpec
from featx.errors import DecodeWorkerError, ImageDecodeError, OptionError
from featx.options import EmbedOptions
from tests.imagegen import make_class_folder, write_image


@pytest.fixture
def files(tmp_path):
    """12 files in order: good PNGs and JPEGs, one not an image, one truncated JPEG."""
    paths = []
    for i in range(12):
        path = tmp_path / f"img_{i:02d}.{'png' if i % 2 else 'jpg'}"
        write_image(path, size=(40 + i, 30 + 2 * i), seed=i)
        paths.append(path)
    paths[3].write_bytes(b"not an image at all")
    paths[8].write_bytes(paths[8].read_bytes()[:200])
    return paths


def _reason(path, size=24):
    try:
        load_image(path, (size, size))
    except ImageDecodeError as exc:
        return str(exc)
    return None


def _decode(files, processes, **kwargs):
    keys, rows, failures = [], [], []
    for batch_keys, pixels, batch_failures in decode_batches(
            list(enumerate(files)), DecodeSpec(24), workers=2, batch_size=4, processes=processes, **kwargs):
        assert len(batch_keys) == len(pixels) <= 4
        keys += batch_keys
        rows += [row.copy() for row in pixels]
        failures += [(key, type(error), str(error)) for key, error in batch_failures]
        if processes:
            assert isinstance(pixels.base, np.ndarray) or pixels.base is not None  # a view of the shared batch
            assert not pixels.flags.owndata
    return keys, rows, failures


@pytest.mark.integration  # starts worker processes
def test_worker_processes_decode_exactly_as_load_image_in_order(files):
    keys, rows, failures = _decode(files, processes=True)
    assert keys == [i for i in range(12) if i not in (3, 8)]
    for key, row in zip(keys, rows):
        np.testing.assert_array_equal(row, load_image(files[key], (24, 24)))
    assert failures == [(3, ImageDecodeError, _reason(files[3])), (8, ImageDecodeError, _reason(files[8]))]
    assert _reason(files[8]) == "truncated image data"
    threads = _decode(files, processes=False)  # the small-run path gives the very same batches
    assert threads[0] == keys and threads[2] == failures
    assert all(np.array_equal(a, b) for a, b in zip(threads[1], rows))


@pytest.mark.integration  # starts worker processes
def test_a_killed_worker_is_one_clear_error_and_leaves_nothing_behind(files, monkeypatch, tmp_path):
    monkeypatch.setenv("FEATX_CRASH_AT", "decoding:3")  # each worker dies on its third file
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    with pytest.raises(DecodeWorkerError, match="decoding worker process was killed by signal 9") as raised:
        _decode(files, processes=True)
    assert raised.value.param == "workers" and "\n" not in str(raised.value)
    assert not list(tmp_path.glob("featx-decode-*"))
    assert not [name for name in os.listdir("/dev/shm") if name.startswith("featx-decode-")]


def test_jpeg_draft_decodes_large_jpegs_smaller_and_leaves_the_rest_exact(tmp_path):
    big, small, png = tmp_path / "big.jpg", tmp_path / "small.jpg", tmp_path / "big.png"
    for path in (big, png):
        write_image(path, size=(800, 600), seed=1)
    write_image(small, size=(60, 40), seed=2)  # less than twice the target: draft mode does nothing
    exact, draft = load_image(big, (64, 64)), load_image(big, (64, 64), jpeg_draft=True)
    assert draft.shape == exact.shape == (64, 64, 3)
    assert not np.array_equal(draft, exact)
    assert np.abs(draft - exact).mean() < 12  # the same picture, smoother: DCT-domain downscaling
    for path in (small, png):
        np.testing.assert_array_equal(load_image(path, (32, 32), jpeg_draft=True), load_image(path, (32, 32)))


def test_draft_and_precision_are_in_the_fingerprint_and_defaults_keep_old_ones():
    base = EmbedOptions("MobileNetV2", weights="none", image_size=32).resolve()
    assert "jpeg_draft" not in base.identity() and "precision" not in base.identity()  # old caches still match
    fingerprints = {base.fingerprint}
    for change in ({"jpeg_draft": True}, {"precision": "bfloat16"}, {"precision": "float16"}):
        config = EmbedOptions("MobileNetV2", weights="none", image_size=32, **change).resolve()
        assert config.identity()[next(iter(change))] == next(iter(change.values()))
        fingerprints.add(config.fingerprint)
    assert len(fingerprints) == 4
    with pytest.raises(OptionError, match="The 'precision' parameter must be one of float32, bfloat16, float16"):
        EmbedOptions(precision="half")
    with pytest.raises(OptionError, match="jpeg_draft' parameter must be True or False"):
        EmbedOptions(jpeg_draft="yes")


def test_precision_is_refused_for_a_custom_backbone(tmp_path):
    model = tmp_path / "m.keras"
    model.write_bytes(b"zip")
    with pytest.raises(OptionError, match="The 'precision' parameter applies to registry backbones only"):
        EmbedOptions(str(model), precision="bfloat16", image_size=32).resolve()


@pytest.mark.integration  # two `featx embed` processes on 300 images
def test_cli_a_killed_worker_fails_the_run_in_one_line_and_a_rerun_resumes(tmp_path):
    data = make_class_folder(tmp_path / "data", per_class=150, size=(20, 16))  # 300: worker processes
    command = [sys.executable, "-m", "featx", "embed", str(data), "--weights", "none", "--image-size", "32",
               "--batch-size", "32", "--workers", "2", "--cache", str(tmp_path / "cache"), "--json"]
    env = {**os.environ, "FEATX_CRASH_AT": "decoding:100",  # a worker dies past its 100th file
           "FEATX_DECODER": "processes"}  # what a GPU run uses; on a CPU featx decodes in threads
    killed = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert killed.returncode == 1, killed.stderr
    lines = killed.stderr.strip().splitlines()
    assert len(lines) == 1 and "decoding worker process was killed by signal 9" in lines[0], killed.stderr
    assert "--workers" in lines[0]
    rerun = subprocess.run(command, env={**os.environ, "FEATX_DECODER": "processes"}, capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    report = json.loads(rerun.stdout)
    assert report["embedded"] + report["reused"] == 300 and report["skipped"] == []
    assert report["reused"] >= 32  # the batches committed before the worker died were kept
