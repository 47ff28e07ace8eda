"""Datasets where a cluster keeps them: URLs listed, stated, hashed and read through fsspec
(the in-memory and local filesystems here; s3:// and gs:// go through the same calls). Fast: no Ray."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from featx.data.images import load_image
from featx.data.layouts import scan_dataset
from featx.data.objectstore import ObjectFiles, Url, hash_urls, is_url
from featx.engine.fileindex import index_files
from featx.engine.pixels import NotAsPlannedError, load_planned
from featx.errors import DatasetError, MissingFileError
from tests.imagegen import make_class_folder

fsspec = pytest.importorskip("fsspec")


@pytest.fixture
def bucket(tmp_path):
    """A class-folder dataset copied into fsspec's in-memory filesystem: (URL, local folder)."""
    data = make_class_folder(tmp_path / "data", per_class=3)
    memory = fsspec.filesystem("memory")
    url = f"memory://bucket-{tmp_path.name}/data"
    for path in data.rglob("*.png"):
        memory.pipe(f"/bucket-{tmp_path.name}/data/{path.relative_to(data).as_posix()}", path.read_bytes())
    memory.pipe(f"/bucket-{tmp_path.name}/data/.hidden/x.png", b"not listed")
    yield url, data
    memory.rm(f"/bucket-{tmp_path.name}", recursive=True)


def test_a_url_is_scanned_like_the_same_folder(bucket):
    url, data = bucket
    remote, local = scan_dataset(url), scan_dataset(data)
    assert is_url(url) and not is_url(str(data))
    assert (remote.layout, remote.classes, remote.records) == (local.layout, local.classes, local.records)
    assert remote.root == url and remote.root / "cat/cat_0.png" == f"{url}/cat/cat_0.png"
    assert isinstance(remote.source, Url) and remote.source.name == "data" and not remote.source.is_file()


def test_url_layouts_and_mistakes(tmp_path):
    memory = fsspec.filesystem("memory")
    base = f"/layouts-{tmp_path.name}"
    png = (make_class_folder(tmp_path / "one", classes=("a",), per_class=1) / "a" / "a_0.png").read_bytes()
    for name in ("train/cat/1.png", "val/dog/2.png", "validation/cat/3.png"):
        memory.pipe(f"{base}/splits/{name}", png)
    memory.pipe(f"{base}/flat/1.png", png)
    memory.pipe(f"{base}/mixed/1.png", png)
    memory.pipe(f"{base}/mixed/cat/2.png", png)
    try:
        splits = scan_dataset(f"memory://{base}/splits")
        assert splits.layout == "splits" and splits.classes == ("cat", "dog")
        assert [(r.path, r.label, r.split) for r in splits.records] == [
            ("train/cat/1.png", 0, "train"), ("val/dog/2.png", 1, "val"), ("validation/cat/3.png", 0, "val")]
        assert scan_dataset(f"memory://{base}/flat").layout == "unlabelled"
        with pytest.raises(DatasetError, match="holds images at several depths") as raised:
            scan_dataset(f"memory://{base}/mixed")
        assert raised.value.param == "data"
        with pytest.raises(MissingFileError, match="no image files under memory://"):
            scan_dataset(f"memory://{base}/nothing")
    finally:
        memory.rm(base, recursive=True)


def test_url_files_get_the_ids_of_their_bytes_and_a_rerun_hashes_only_what_changed(bucket):
    url, data = bucket
    dataset = scan_dataset(url)
    hashed: list[str] = []

    def hash_many(urls):
        hashed.extend(urls)
        return hash_urls(urls)

    first, failed, _ = index_files(dataset.root, dataset.records, None, 2, files=ObjectFiles(url, hash_many))
    local, _, _ = index_files(data, scan_dataset(data).records, None, 2)
    assert failed == [] and first.id.tolist() == local.id.tolist()
    assert first.id[0] == hashlib.sha256((data / first.path[0]).read_bytes()).hexdigest().encode()
    assert len(hashed) == 6

    hashed.clear()
    fsspec.filesystem("memory").pipe(url.split("://")[1] + "/dog/dog_1.png", (data / "cat" / "cat_2.png").read_bytes())
    again, _, _ = index_files(dataset.root, dataset.records, first, 2, files=ObjectFiles(url, hash_many))
    assert hashed == [f"{url}/dog/dog_1.png"]
    changed = again.path.tolist().index("dog/dog_1.png")
    assert again.id[changed] == local.id[local.path.tolist().index("cat/cat_2.png")]


def test_a_url_decodes_to_the_pixels_of_the_same_file(bucket):
    url, data = bucket
    content_id = hashlib.sha256((data / "cat" / "cat_0.png").read_bytes()).hexdigest().encode()
    pixels = load_planned(f"{url}/cat/cat_0.png", 24, "crop", 10**8, content_id)
    np.testing.assert_array_equal(pixels, load_image(data / "cat" / "cat_0.png", (24, 24), "crop"))
    gone = load_planned(f"{url}/cat/gone.png", 24, "crop", 10**8, content_id)
    assert isinstance(gone, NotAsPlannedError) and str(gone) == "file not found"
    changed = load_planned(f"{url}/cat/cat_1.png", 24, "crop", 10**8, content_id)
    assert isinstance(changed, NotAsPlannedError) and "changed during the run" in str(changed)
