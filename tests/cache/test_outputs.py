"""Outputs never destroy inputs: every command that writes refuses, before any work, an output on a
featx cache (or its lock, shards, segments, views), on one of its own inputs, on another of its
outputs, or on a folder holding files it would replace; every file stays byte-identical."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from featx.cache.lock import lock_path
from featx.cache.outputs import check_outputs, featx_owned
from featx.cache.schema import ENCODING_TYPE
from featx.cache.shards import shard_dir
from featx.cli import app
from featx.errors import OptionError
from featx.features.vectors import load_features
from featx.heads import fit_head
from tests.cache.test_integrity_cache import _embed
from tests.imagegen import make_class_folder, write_image


def _marked_cache(path):
    with h5py.File(path, "w") as h5:
        h5.attrs["encoding-type"] = ENCODING_TYPE
    return path


def _snapshot(*roots) -> dict:
    return {p: p.read_bytes() for root in roots for p in sorted(root.rglob("*")) if p.is_file()}


def test_featx_owned_knows_every_file_beside_a_cache(tmp_path):
    cache = _marked_cache(tmp_path / "d--MobileNetV2--abc.h5")
    assert featx_owned(cache) == "a featx cache"
    assert featx_owned(lock_path(cache)).startswith("the lock of the cache")
    assert featx_owned(shard_dir(cache) / "x.h5").startswith("inside the shards folder")
    assert featx_owned(tmp_path / "d--MobileNetV2--abc.h5.views" / "flip--1.h5").startswith("inside the views")
    mine = tmp_path / "mine.h5"
    with h5py.File(mine, "w") as h5:
        h5["x"] = [1, 2]
    assert featx_owned(mine) is None and featx_owned(tmp_path / "new.csv") is None


@pytest.mark.parametrize(("outputs", "inputs", "extra", "match"), [
    ({"path": "{cache}"}, {}, {}, "featx never writes over its own files"),
    ({"path": "{lock}"}, {}, {}, "featx never writes over its own files"),
    ({"path": "{input}"}, {"images": ["{input}"]}, {}, "is the images this command reads"),
    ({"report": "{out}", "manifest": "{out}"}, {}, {}, "is also where report is written"),
    ({"out": "{folder}"}, {}, {"writes": {"out": ("vectors.npy", "rows.csv")}}, "already holds vectors.npy"),
    ({"plot": "{tmp}/c.txt"}, {}, {"suffixes": {"plot": (".png", ".pdf")}}, "end the name in one of .png, .pdf"),
])
def test_check_outputs_refuses_naming_the_parameter(tmp_path, outputs, inputs, extra, match):
    cache = _marked_cache(tmp_path / "c.h5")
    lock_path(cache).touch()
    folder = tmp_path / "mine"
    (folder / "vectors.npy").parent.mkdir()
    (folder / "vectors.npy").write_bytes(b"my own vectors")
    image = write_image(tmp_path / "a.png")
    names = dict(cache=cache, lock=lock_path(cache), input=image, out=tmp_path / "m.csv", folder=folder, tmp=tmp_path)

    def fill(value):
        return [fill(v) for v in value] if isinstance(value, list) else value.format(**names)

    before = _snapshot(tmp_path)
    with pytest.raises(OptionError, match=match) as raised:
        check_outputs({k: fill(v) for k, v in outputs.items()}, inputs={k: fill(v) for k, v in inputs.items()}, **extra)
    assert raised.value.param == list(outputs)[-1]
    assert _snapshot(tmp_path) == before


def test_a_folder_that_holds_the_files_is_replaced_only_when_forced(tmp_path):
    (tmp_path / "rows.csv").write_text("mine")
    check_outputs({"out": tmp_path}, writes={"out": ("vectors.npy", "rows.csv")}, force=True)
    check_outputs({"out": tmp_path / "new"}, writes={"out": ("vectors.npy", "rows.csv")})


@pytest.fixture
def workspace(tmp_path, monkeypatch):
    """A labelled cache (stand-in vectors, no Keras) in the cache folder, a head fitted on it, an image."""
    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path / "featx"))
    data = make_class_folder(tmp_path / "data", per_class=5)
    cache = tmp_path / "featx" / "data--MobileNetV2--0.h5"
    cache.parent.mkdir()
    _embed(data, cache)
    head = fit_head(load_features(cache), "logreg").save(tmp_path / "head")
    image = next((data / "cat").iterdir())
    return tmp_path, cache, head, image


def _refused(result, flag: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and flag in lines[0], result.stderr


@pytest.mark.parametrize("command", [
    ["inspect", "{cache}", "--write-manifest", "{cache}"],
    ["inspect", "{cache}", "--report", "{cache}"],
    ["inspect", "{cache}", "--map", "{lock}"],
    ["inspect", "{cache}", "--map", "{root}/map.txt"],
    ["inspect", "{cache}", "--write-manifest", "{root}/m.csv", "--report", "{root}/m.csv"],
    ["predict", "{head}", "{image}", "-o", "{cache}"],
    ["predict", "{head}", "{image}", "-o", "{image}"],
    ["evaluate", "{head}", "--plot", "{cache}"],
    ["evaluate", "{head}", "--plot", "{root}/confusion.txt"],
    ["fit-head", "--cache", "{cache}", "-o", "{cache}"],
    ["cache", "export", "{root}/mine", "--format", "npy", "--cache", "{cache}"],
    ["cache", "export", "{cache}", "--cache", "{cache}"],
    *(pytest.param(command, marks=pytest.mark.integration) for command in (  # fine-tune imports Keras first
        ["fine-tune", "{head}", "-o", "{cache}"],
        ["fine-tune", "{head}", "-o", "{lock}"],
        ["fine-tune", "{head}", "--data", "{root}/data", "-o", "{root}/data"],
    )),
    ["export", "{head}", "-o", "{cache}"],
    ["export", "{head}", "-o", "{head}"],
    ["export", "{head}", "-o", "{image}", "--format", "onnx"],
    ["export", "{head}", "-o", "{root}/model", "--format", "keras"],
    ["export", "{head}", "-o", "{root}/mine", "--format", "savedmodel"],
])
def test_no_command_writes_over_a_cache_an_input_or_a_users_files(workspace, command):
    root, cache, head, image = workspace
    (root / "mine").mkdir()
    (root / "mine" / "vectors.npy").write_bytes(b"my own vectors")
    (root / "mine" / "rows.csv").write_text("my own rows")
    (root / "mine" / "saved_model.pb").write_text("my own model")
    lock_path(cache).touch()
    names = dict(cache=cache, lock=lock_path(cache), root=root, head=head, image=image)
    before = _snapshot(root)
    result = CliRunner().invoke(app, [part.format(**names) for part in command])
    flags = [part for part in command if part.startswith("-") and part not in ("--cache", "--format", "--data")]
    _refused(result, "OUT" if command[:2] == ["cache", "export"] else flags[-1])  # the output named by its flag
    assert _snapshot(root) == before


def test_cache_export_replaces_an_npy_folder_only_with_force(workspace):
    root, cache, _, _ = workspace
    (root / "mine").mkdir()
    (root / "mine" / "rows.csv").write_text("my own rows")
    done = CliRunner().invoke(app, ["cache", "export", str(root / "mine"), "--format", "npy", "--cache", str(cache),
                                    "--force"])
    assert done.exit_code == 0, done.output
    assert (root / "mine" / "rows.csv").read_text().startswith("id,path,label,split")


def test_cache_rm_deletes_only_what_it_names(workspace):
    root, cache, _, _ = workspace
    lock_path(cache).touch()
    before = _snapshot(root)
    by_lock = CliRunner().invoke(app, ["cache", "rm", str(lock_path(cache))])
    assert by_lock.exit_code == 1 and "name the cache itself" in by_lock.stderr and "deleted" not in by_lock.stdout
    every = CliRunner().invoke(app, ["cache", "rm", "--all"])  # nobody to ask: refused
    _refused(every, "--yes")
    assert _snapshot(root) == before
    confirmed = CliRunner().invoke(app, ["cache", "rm", "--all", "--yes"])
    assert confirmed.exit_code == 0 and not cache.exists()


def test_cache_info_of_a_missing_path_fails(tmp_path):
    result = CliRunner().invoke(app, ["cache", "info", str(tmp_path / "nothing.h5")])
    assert result.exit_code == 1 and "does not exist" in result.stderr


@pytest.mark.parametrize("target", ["/", "", "."])
def test_cache_rm_of_a_folder_name_is_one_line(target):
    result = CliRunner().invoke(app, ["cache", "rm", target])
    assert result.exit_code == 1 and "is a folder, not a featx cache; not deleted" in result.stderr
    assert "unexpected" not in result.stderr


def test_cache_compact_of_a_users_file_touches_nothing(tmp_path):
    script = tmp_path / "mk.py"
    script.write_text("print('mine')\n")
    result = CliRunner().invoke(app, ["cache", "compact", str(script)])
    assert result.exit_code == 1 and "is not a featx cache" in result.stderr and "Delete it" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mk.py"] and script.read_text() == "print('mine')\n"


@pytest.mark.parametrize("format", ["npy", "parquet"])
def test_cache_export_refuses_nan_vectors_and_leaves_no_file(workspace, format):
    if format == "parquet":
        pytest.importorskip("pyarrow")
    root, cache, _, _ = workspace
    with h5py.File(cache, "r+") as h5:
        h5["vectors/features"][6, 3] = np.nan  # written through HDF5 into its segment
    out = root / ("out" if format == "npy" else "out.parquet")
    result = CliRunner().invoke(app, ["cache", "export", str(out), "--format", format, "--cache", str(cache)])
    assert result.exit_code == 1 and "NaN, infinite or absurd values" in result.stderr
    assert not out.exists() or list(out.iterdir()) == []


def test_compacting_a_cache_with_a_damaged_segment_names_the_damage(workspace):
    _, cache, _, _ = workspace
    with h5py.File(cache, "r+") as h5:
        h5["vectors/features"][2, 5] = np.inf  # through HDF5 into the segment: its digest now differs
    before = cache.read_bytes()
    result = CliRunner().invoke(app, ["cache", "compact", str(cache)])
    assert result.exit_code == 1 and "have no usable vector (a damaged or missing segment" in result.stderr
    assert "deleted during the run" not in result.stderr and cache.read_bytes() == before


def test_parquet_without_pyarrow_says_what_to_install_or_use_before_any_work(workspace, monkeypatch):
    import importlib.util

    root, cache, _, _ = workspace
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "pyarrow" else real(name, *a))
    result = CliRunner().invoke(app, ["cache", "export", str(root / "v.parquet"), "--cache", str(cache)])
    assert result.exit_code == 1 and 'pip install "featx[parquet]", or export with --format npy' in result.stderr
    assert not (root / "v.parquet").exists()
