"""Never silently wrong: a file changing mid-run, damaged or absurd vectors, shards deleted during a
run, and a second dataset aimed at one cache file. A stand-in backbone keeps these free of
TensorFlow (its vectors are a fixed function of the pixels, like a real backbone's)."""

from __future__ import annotations

import os
import shutil

import h5py
import numpy as np
import pytest

import featx._faults
import featx.cache.segments
import featx.cache.store
from featx.cache.segments import segment_dir, vector_segments
from featx.cache.shards import list_shards
from featx.cache.store import CacheIndex
from featx.cache.verify import verify_cache
from featx.data.images import load_image
from featx.data.layouts import scan_dataset
from featx.engine.pixels import CHANGED
from featx.engine.run import embed_into_cache
from featx.errors import CacheError
from featx.features.vectors import load_features
from featx.options import EmbedOptions, RunOptions
from tests.imagegen import make_class_folder, write_image

CONFIG = EmbedOptions("MobileNetV2", weights="none", image_size=32).resolve()
RUN = RunOptions(batch_size=2, workers=2)
WIDTH = 1280  # MobileNetV2's, as the backbone table says


class StandInBackbone:
    """The first WIDTH pixel values of each image: deterministic, content-dependent vectors."""

    batch_size = RUN.batch_size
    feature_dim = WIDTH
    backend = "stand-in"

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        return pixels.reshape(len(pixels), -1)[:, :WIDTH].astype(np.float32) / 255.0


def _embed(data, cache_file):
    return embed_into_cache(scan_dataset(data), CONFIG, cache_file, RUN, extractor=StandInBackbone())


def _expected(path) -> np.ndarray:
    return StandInBackbone()(load_image(path, (32, 32))[None])[0]


def _at(point: str, action, monkeypatch) -> None:
    """Run ``action`` when the embed run reaches crash point ``point`` (a hook, not a kill)."""
    monkeypatch.setitem(featx._faults.HOOKS, point, action)


@pytest.fixture
def data(tmp_path):
    return make_class_folder(tmp_path / "data", per_class=2)  # 4 images, 2 batches


def _check_all_rows(cache_file, data):
    features = load_features(cache_file)
    assert len(features) == 4
    for path, row in zip(features.paths, features.X):
        np.testing.assert_array_equal(row, _expected(path))
    assert verify_cache(cache_file) == ([], [])


# 2. A file that changes between hashing and decoding never gets another content's vector.

def test_a_file_changed_during_the_run_is_skipped_not_stored_under_its_old_id(tmp_path, data, monkeypatch):
    cache_file = tmp_path / "c.h5"
    victim = data / "cat" / "cat_0.png"
    old_id = featx.config.sha256_file(victim).encode()
    _at("planned", lambda: write_image(victim, seed=4321), monkeypatch)

    report = _embed(data, cache_file)

    assert [(s.path, s.reason) for s in report.skipped] == [(str(victim), CHANGED)]
    assert old_id not in CacheIndex.read(cache_file).vector_ids.tolist()
    monkeypatch.undo()
    again = _embed(data, cache_file)
    assert (again.embedded, again.reused, again.skipped) == (1, 3, [])
    _check_all_rows(cache_file, data)


def test_a_file_truncated_during_the_run_is_retried_once_restored(tmp_path, data, monkeypatch):
    cache_file = tmp_path / "c.h5"
    victim = data / "dog" / "dog_1.png"
    whole = victim.read_bytes()
    _at("planned", lambda: victim.write_bytes(whole[: len(whole) // 2]), monkeypatch)
    assert [s.reason for s in _embed(data, cache_file).skipped] == [CHANGED]
    monkeypatch.undo()

    victim.write_bytes(whole)  # restored: the same content as when it was planned
    again = _embed(data, cache_file)
    assert (again.embedded, again.skipped) == (1, [])
    _check_all_rows(cache_file, data)


def test_a_file_changed_during_the_run_is_hashed_again_even_with_its_old_size_and_time(tmp_path, data, monkeypatch):
    cache_file = tmp_path / "c.h5"
    victim = data / "cat" / "cat_1.png"
    whole = victim.read_bytes()
    stat = victim.stat()

    def damage() -> None:  # same size, same modification time, other bytes
        victim.write_bytes(whole[:-20] + bytes(b ^ 0xFF for b in whole[-20:]))
        os.utime(victim, ns=(stat.st_atime_ns, stat.st_mtime_ns))

    _at("planned", damage, monkeypatch)
    assert [s.reason for s in _embed(data, cache_file).skipped] == [CHANGED]
    monkeypatch.undo()
    assert [s.reason for s in _embed(data, cache_file).skipped] != [CHANGED]  # its real content's verdict


def test_a_file_that_truly_does_not_decode_stays_skipped_until_it_changes(tmp_path, data):
    cache_file = tmp_path / "c.h5"
    bad = data / "cat" / "cat_1.png"
    whole = bad.read_bytes()
    bad.write_bytes(whole[: len(whole) // 2])
    assert [s.reason for s in _embed(data, cache_file).skipped] == ["truncated image data"]
    assert [s.reason for s in _embed(data, cache_file).skipped] == ["truncated image data"]
    bad.write_bytes(whole)
    assert _embed(data, cache_file).embedded == 1


# 3. Damaged, absurd, wrong-width vectors: caught on read, flagged by verify, re-embedded by a rerun.

def _flip_a_byte(cache_file, dataset: str, at: int = 100) -> None:
    with h5py.File(cache_file, "r") as h5:
        offset = h5[dataset].id.get_chunk_info(0).byte_offset
    with open(cache_file, "r+b") as handle:
        handle.seek(offset + at)
        byte = handle.read(1)[0]
        handle.seek(offset + at)
        handle.write(bytes([byte ^ 0x01]))  # one low mantissa bit: still a valid float


def _segment(cache_file):
    (segment,) = vector_segments(cache_file)
    return segment


def _part(cache_file):
    (part,) = CacheIndex.read(cache_file).parts.name
    return segment_dir(cache_file) / part


# the vectors and their ids live in the segment files; the image table in its part files, which the index
# reads through virtual datasets (so a damaged part is a damaged cache, named by the index file)
@pytest.mark.parametrize("dataset", ["segment:features", "segment:id", "part:images/id", "part:images/mtime_ns"])
def test_a_flipped_bit_is_one_clear_error_on_read_and_in_verify(tmp_path, data, dataset):
    cache_file = tmp_path / "c.h5"
    _embed(data, cache_file)
    kind, dataset = dataset.split(":")
    in_segment = kind == "segment"
    damaged = _segment(cache_file) if in_segment else _part(cache_file)
    _flip_a_byte(damaged, dataset, at=3)

    name = (damaged if in_segment else cache_file).name.replace(".", r"\.")
    message = rf"{name} is damaged \(checksum mismatch in /{dataset}\); delete it and re-run 'featx embed'"
    with pytest.raises(CacheError, match=message) as caught:
        load_features(cache_file)
    assert "\n" not in str(caught.value)
    problems, _ = verify_cache(cache_file)
    assert len(problems) == 1 and "checksum mismatch" in problems[0]
    if in_segment:  # the segment's stat changed: a rerun reads it, refuses it and embeds its images again
        assert _embed(data, cache_file).embedded == 4
        _check_all_rows(cache_file, data)


def test_a_damaged_shard_is_ignored_and_its_images_embedded_again(tmp_path, data, monkeypatch):
    cache_file = tmp_path / "c.h5"

    def stop() -> None:
        raise KeyboardInterrupt  # the run stops after its first shard, as if killed

    _at("shard-committed", stop, monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        _embed(data, cache_file)
    monkeypatch.undo()
    (shard,) = list_shards(cache_file)
    _flip_a_byte(shard, "features")

    report = _embed(data, cache_file)
    assert report.embedded == 4
    _check_all_rows(cache_file, data)


@pytest.mark.parametrize("value", [np.nan, np.inf, 3e38])
def test_absurd_vectors_are_flagged_refused_and_embedded_again(tmp_path, data, value):
    cache_file = tmp_path / "c.h5"
    _embed(data, cache_file)
    with h5py.File(cache_file, "r+") as h5:
        h5["vectors/features"][1, 7] = value  # written through HDF5: the checksum is updated too

    # the write went through the virtual dataset into the segment: its mtime and digest changed
    problems, _ = verify_cache(cache_file)
    assert problems == [f"{_segment(cache_file)} does not hold the vectors committed (its digest differs)",
                        "1 vectors contain NaN, infinite or absurd values (magnitude above 1e+30)"]
    with pytest.raises(CacheError, match="NaN, infinite or absurd values"):
        load_features(cache_file)
    report = _embed(data, cache_file)  # the segment's stat changed: read whole, its bad row refused
    assert (report.embedded, report.reused) == (1, 3)
    _check_all_rows(cache_file, data)


def test_vectors_of_the_wrong_width_are_not_reused(tmp_path, data):
    cache_file = tmp_path / "c.h5"
    _embed(data, cache_file)
    with h5py.File(cache_file, "r+") as h5:
        h5.attrs["feature_dim"] = 7
    assert _embed(data, cache_file).embedded == 4
    _check_all_rows(cache_file, data)


def _as_v2(cache_file, checksums: bool = True) -> None:
    """Rewrite a cache as featx's schema v2 wrote it: ids and image table inside the index file."""
    with h5py.File(cache_file, "r") as h5:  # read-only: through the virtual datasets, into segments and parts
        columns = {name: h5[name][()] for name in ("vectors/id", *(f"images/{c}" for c in h5["images"]))}
    with h5py.File(cache_file, "r+") as h5:
        for name, column in columns.items():
            del h5[name]
            h5.create_dataset(name, data=column, fletcher32=checksums and column.dtype.kind != "O",
                              dtype=h5py.string_dtype() if column.dtype.kind == "O" else column.dtype)
        del h5["parts"], h5["runs"]
        for node in (h5, h5["vectors"], h5["images"], h5["skipped"], h5["segments"]):
            node.attrs["encoding-version"] = 2
    for part in segment_dir(cache_file).glob("images-*.h5"):
        part.unlink()


def _as_v1(cache_file, checksums: bool = True) -> None:
    """Rewrite a cache as featx's schema v1 wrote it: the vectors inside the file, no segments."""
    _as_v2(cache_file, checksums)
    with h5py.File(cache_file, "r+") as h5:
        values = h5["vectors/features"][()]
        del h5["vectors/features"], h5["segments"], h5.attrs["dtype"]
        for node in (h5, h5["vectors"], h5["images"], h5["skipped"]):
            node.attrs["encoding-version"] = 1
        h5.create_dataset("vectors/features", data=values, chunks=True, fletcher32=checksums)
    shutil.rmtree(segment_dir(cache_file))


def test_a_v2_cache_is_read_and_upgraded_by_the_next_embed_that_changes_it(tmp_path, data):
    cache_file = tmp_path / "c.h5"
    _embed(data, cache_file)
    before = load_features(cache_file)
    _as_v2(cache_file)
    np.testing.assert_array_equal(load_features(cache_file).X, before.X)
    assert verify_cache(cache_file) == ([], [])
    assert _embed(data, cache_file).reused == 4 and CacheIndex.read(cache_file).version == 2  # nothing to write
    write_image(sorted((data / "cat").iterdir())[0], seed=50)  # changed: one image to embed
    assert _embed(data, cache_file).embedded == 1
    assert CacheIndex.read(cache_file).version == 3
    _check_all_rows(cache_file, data)


def test_a_cache_without_checksums_is_read_and_verify_notes_it(tmp_path, data):
    cache_file = tmp_path / "c.h5"
    _embed(data, cache_file)
    _as_v1(cache_file, checksums=False)
    assert len(load_features(cache_file)) == 4
    problems, notes = verify_cache(cache_file)
    assert problems == [] and notes == [
        "cache schema v1: the next 'featx embed' upgrades it to appended segments",
        "no checksums: written by an older featx; re-embed to add them"]


def test_a_v1_cache_is_read_then_upgraded_by_the_next_embed_with_one_line(tmp_path, data):
    cache_file = tmp_path / "c.h5"
    _embed(data, cache_file)
    before = load_features(cache_file)
    _as_v1(cache_file)
    np.testing.assert_array_equal(load_features(cache_file).X, before.X)
    report = _embed(data, cache_file)
    assert (report.embedded, report.reused) == (0, 4)
    assert [w for w in report.warnings if "upgraded" in w] == [
        f"upgraded {cache_file} from cache schema v1 (one file, rewritten on every run) to v3 (appended segments)"]
    assert CacheIndex.read(cache_file).version == 3 and len(vector_segments(cache_file)) == 1
    _check_all_rows(cache_file, data)


def test_an_unchanged_rerun_reads_no_vectors(tmp_path, data, monkeypatch):
    cache_file = tmp_path / "c.h5"
    _embed(data, cache_file)

    def no_reads(*args, **kwargs):
        raise AssertionError("a vector file was read")

    monkeypatch.setattr(featx.cache.segments, "iter_blocks", no_reads)
    monkeypatch.setattr(featx.cache.store, "iter_blocks", no_reads)
    mtime = cache_file.stat().st_mtime_ns
    assert _embed(data, cache_file).reused == 4
    assert cache_file.stat().st_mtime_ns == mtime  # nothing committed either


# 4. Shards deleted during a run: an error, the committed cache kept, a rerun completes it.

def test_shards_deleted_during_a_run_fail_the_commit_and_a_rerun_completes(tmp_path, data, monkeypatch):
    cache_file = tmp_path / "c.h5"
    _embed(data, cache_file)
    before = load_features(cache_file)
    for i in range(2):
        write_image(data / "cat" / f"new_{i}.png", seed=500 + i)
    write_image(data / "dog" / "new_2.png", seed=502)

    def clean_up() -> None:  # another process empties the shard folder
        for shard in list_shards(cache_file):
            shard.unlink()

    _at("shard-committed", clean_up, monkeypatch)
    with pytest.raises(CacheError, match=r"3 vector\(s\) embedded for .* are gone .*the committed cache is unchanged"):
        _embed(data, cache_file)
    monkeypatch.undo()
    np.testing.assert_array_equal(load_features(cache_file).X, before.X)

    report = _embed(data, cache_file)
    assert (report.embedded, report.reused, report.skipped) == (3, 4, [])
    features = load_features(cache_file)
    assert len(features) == 7
    for path, row in zip(features.paths, features.X):
        np.testing.assert_array_equal(row, _expected(path))


# 8. One cache file, one dataset.

def test_a_second_dataset_is_refused_by_an_explicit_cache_file(tmp_path, data):
    cache_file = tmp_path / "c.h5"
    _embed(data, cache_file)
    other = make_class_folder(tmp_path / "other", per_class=1)
    with pytest.raises(CacheError, match=r"c\.h5 holds the features of another source \(.*data\); "
                                         r"choose another cache file \(the 'cache' parameter\) or delete"):
        _embed(other, cache_file)
    assert len(load_features(cache_file)) == 4


def test_loose_file_caches_are_shared(tmp_path):
    from featx.data.layouts import loose_files

    first = [write_image(tmp_path / "a" / "x.png", seed=1)]
    second = [write_image(tmp_path / "b" / "y.png", seed=2)]
    cache_file = tmp_path / "files.h5"
    for files in (first, second):
        embed_into_cache(loose_files(files), CONFIG, cache_file, RUN, extractor=StandInBackbone())
    assert len(CacheIndex.read(cache_file).vector_ids) == 2
