"""The Ray engine end to end on a local Ray instance of 2 CPUs: a driver killed mid-run, its rerun
with an embedding worker killed mid-run and a corrupt image, and a dataset named by URL, against the
local engine's vectors."""

from __future__ import annotations

import logging
import os
import subprocess
import sys

import numpy as np
import pytest

import featx
from featx.cache.locate import cache_path_for
from featx.cache.shards import read_shards
from featx.cache.verify import verify_cache
from featx.data.layouts import scan_dataset
from featx.options import EmbedOptions
from tests.imagegen import make_class_folder

pytestmark = pytest.mark.integration  # starts Ray, builds Keras backbones in its workers

OPTS = dict(weights="none", image_size=32, batch_size=2)
CLI_OPTS = ["--weights", "none", "--image-size", "32", "--batch-size", "2", "-q"]


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray instance for the module (2 CPUs, no dashboard): its GCS address."""
    ray = pytest.importorskip("ray")
    context = ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                       logging_level=logging.WARNING)
    try:
        yield context.address_info["gcs_address"]
    finally:
        ray.shutdown()


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """10 images and a corrupt one, and the local engine's features of them."""
    root = tmp_path_factory.mktemp("ray")
    data = make_class_folder(root / "data", per_class=5)
    (data / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n but not an image")
    return data, featx.embed(data, "MobileNetV2", cache=root / "local", **OPTS)


def _assert_same_vectors(features, reference):
    expected, got = dict(zip(reference.paths, reference.X)), dict(zip(features.paths, features.X))
    assert sorted(got) == sorted(expected)
    for path, vector in expected.items():
        np.testing.assert_allclose(got[path], vector, atol=1e-5)


def _local_hosts(address: str) -> str:
    """no_proxy for the cluster: the suite routes HTTP(S) to a closed port, and gRPC honours it."""
    return ",".join([address.rsplit(":", 1)[0], "127.0.0.1", "localhost"])


def test_driver_killed_then_rerun_with_a_worker_killed_matches_the_local_engine(
        tmp_path, monkeypatch, ray_address, dataset):
    monkeypatch.setenv("no_proxy", _local_hosts(ray_address))
    data, local = dataset
    options = EmbedOptions("MobileNetV2", **OPTS)
    config = options.resolve()
    cache_file = cache_path_for(tmp_path / "ray", scan_dataset(data).source, config.display_name, config.fingerprint)

    # A driver killed once two batches are committed (`featx embed --engine ray --address`, its own process).
    env = {**os.environ, "FEATX_CRASH_AT": "shard-committed:2", "no_proxy": _local_hosts(ray_address)}
    killed = subprocess.run(
        [sys.executable, "-m", "featx", "embed", str(data), *CLI_OPTS, "--cache", str(tmp_path / "ray"),
         "--engine", "ray", "--address", ray_address],
        env=env, capture_output=True, text=True, timeout=240,
    )
    assert killed.returncode == -9, killed.stderr
    assert not cache_file.exists()  # nothing consolidated: the batches wait as shards
    shards = list(read_shards(cache_file, config.fingerprint, features=False))
    assert len(shards) == 2
    committed = sum(len(ids) for _, ids, _, _, _ in shards)
    decided = committed + sum(len(skipped) for _, _, _, skipped, _ in shards)
    assert decided == 4  # two batches of 2 images (embedded or skipped)

    # The same run again, in this process; its embedding worker dies on its second batch, once.
    marker = tmp_path / "worker-killed"
    monkeypatch.setenv("FEATX_CRASH_AT", "embedding-worker:2")
    monkeypatch.setenv("FEATX_CRASH_ONCE", str(marker))
    told: list[tuple[str, int | None]] = []

    def progress(total: int):
        told.append(("total", total))
        return lambda count, workers=None: told.append((count, workers))

    again = featx.embed(data, "MobileNetV2", cache=tmp_path / "ray", engine="ray", progress=progress, **OPTS)
    assert marker.exists()  # the worker was killed mid-run, and Ray restarted it and retried its batch
    report = again.report
    assert report.cache_path == cache_file
    assert (report.images, report.reused, report.embedded) == (11, committed, 10 - committed)
    assert told[0] == ("total", 11 - decided)
    assert sum(count for count, _ in told[1:]) == 11 - decided and all(w >= 1 for _, w in told[1:])
    assert [(s.path, s.reason) for s in report.skipped] == [(s.path, s.reason) for s in local.report.skipped]
    assert [os.path.basename(s.path) for s in report.skipped] == ["broken.png"]

    _assert_same_vectors(again, local)
    assert verify_cache(cache_file) == ([], [])


def test_a_dataset_named_by_url_is_hashed_and_read_on_the_workers(tmp_path, monkeypatch, ray_address, dataset):
    # file:// goes through fsspec exactly as s3:// or gs:// would; memory:// is each process's own,
    # so a Ray worker cannot see it: it is read by the local engine below, and in test_ray_inputs.py.
    monkeypatch.setenv("no_proxy", _local_hosts(ray_address))
    data, local = dataset
    url = data.as_uri()
    features = featx.embed(url, "MobileNetV2", cache=tmp_path / "ray", engine="ray", **OPTS)
    assert features.report.embedded == 10 and features.paths[0].startswith(url + "/")
    assert [(s.path, s.reason) for s in features.report.skipped] == [
        (f"{url}/cat/broken.png", local.report.skipped[0].reason)]
    rows = dict(zip((p[len(url):] for p in features.paths), features.X))
    for path, vector in zip(local.paths, local.X):
        np.testing.assert_allclose(rows[path[len(str(data)):]], vector, atol=1e-5)
    assert featx.embed(url, "MobileNetV2", cache=tmp_path / "ray", engine="ray", **OPTS).report.reused == 10

    fsspec = pytest.importorskip("fsspec")
    memory = fsspec.filesystem("memory")
    for path in data.rglob("*.png"):
        memory.pipe(f"/ray-test/data/{path.relative_to(data).as_posix()}", path.read_bytes())
    try:
        in_memory = featx.embed("memory://ray-test/data", "MobileNetV2", cache=tmp_path / "memory", **OPTS)
    finally:
        memory.rm("/ray-test", recursive=True)
    assert in_memory.report.embedded == 10 and len(in_memory.report.skipped) == 1
    np.testing.assert_allclose(in_memory.X, local.X, atol=1e-5)
