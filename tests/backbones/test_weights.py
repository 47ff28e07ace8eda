"""``featx weights``: the table against Keras' own source, cache status, and importing files offline.

No test downloads anything: imported files are fabricated here, and since no fabricated file can
match a real hash, the import tests pass a table whose hash is that of the fabricated bytes (or
patch one entry); the refusals run against the real entries.
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
import subprocess
import sys
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import featx.backbones.weights
from featx.backbones.applications import get_backbone, list_backbones
from featx.backbones.weights import file_status, import_weights, known_files, list_weights, weights_dir, weights_file
from featx.cli import app
from featx.errors import FeatxError, MissingFileError
from tests.imagegen import make_class_folder

runner = CliRunner()
HDF5 = b"\x89HDF\r\n\x1a\n"  # the first bytes of every HDF5 file
GIANT_PARAMS = 40_000_000  # as in test_backbones: building these takes seconds each, run with --run-slow


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture
def models(tmp_path, monkeypatch) -> Path:
    """A fresh, not yet created Keras cache folder: $KERAS_HOME/models."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    return tmp_path / "keras-home" / "models"


def fabricate(folder: Path, name: str, payload: bytes = b"weights") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(HDF5 + payload)
    return path


def verified(entry, path: Path):
    """``entry`` with the hash of the file at ``path``, in the entry's own algorithm (sha256 if none)."""
    return replace(entry, file_hash=hashlib.new(entry.algorithm or "sha256", path.read_bytes()).hexdigest())


def patch_hash(monkeypatch, backbone: str, path: Path) -> None:
    """Make the table's hash for ``backbone`` that of the file at ``path``, for this test."""
    folder, name, _ = featx.backbones.weights._TABLE[backbone]
    monkeypatch.setitem(featx.backbones.weights._TABLE, backbone,
                        (folder, name, verified(weights_file(backbone), path).file_hash))


# --- the table is what Keras downloads ---------------------------------------------------------


def _keras_source(module: str) -> str:
    """The text of keras/src/applications/<module>.py, found without importing Keras."""
    keras_dir = Path(importlib.util.find_spec("keras").submodule_search_locations[0])
    return (keras_dir / "src" / "applications" / f"{module}.py").read_text()


@pytest.mark.parametrize("name", list_backbones())
def test_hash_and_url_are_in_keras_source(name):
    entry = weights_file(name)
    module = get_backbone(name).module
    source = _keras_source("resnet" if module == "resnet_v2" else module)  # ResNetV2 calls resnet.ResNet
    strings = {n.value for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Constant) and isinstance(n.value, str)}
    if entry.file_hash:
        assert entry.file_hash in strings
    else:
        assert "file_hash" not in source  # Keras checks no hash for this family
    assert any(s.startswith("https://") and entry.url.startswith(s) for s in strings)


def _download_cases():
    for name in list_backbones():
        marks = [pytest.mark.slow] if get_backbone(name).params > GIANT_PARAMS else []
        yield pytest.param(name, get_backbone(name).input_size, marks=marks, id=name)
    for name, size in [("MobileNet", 128), ("MobileNetV2", 96), ("MobileNetV2", 300)]:  # 300: no file, 224's
        yield pytest.param(name, size, id=f"{name}-{size}")


@pytest.mark.integration
@pytest.mark.parametrize("name,size", list(_download_cases()))
def test_table_is_the_file_keras_asks_for(name, size, monkeypatch):
    """Build the backbone as featx does with ImageNet weights and catch Keras' call to get_file."""
    from keras.src.utils import file_utils  # a test may read Keras' private API; featx may not

    from featx.backend import import_keras

    keras = import_keras()
    calls = []

    class Asked(Exception):
        pass

    def get_file(fname=None, origin=None, **kwargs):
        calls.append({"fname": fname, "origin": origin, **kwargs})
        raise Asked

    monkeypatch.setattr(file_utils, "get_file", get_file)
    with pytest.raises(Asked), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns that it has no MobileNetV2 weights for 300 px
        getattr(keras.applications, name)(include_top=False, weights="imagenet", input_shape=(size, size, 3),
                                          pooling="avg")
    entry = weights_file(name, size)
    expected = {"fname": entry.file_name, "origin": entry.url, "cache_subdir": "models"}
    assert calls == [expected | ({"file_hash": entry.file_hash} if entry.file_hash else {})]


def test_table_covers_every_backbone_and_shared_files_agree():
    assert [weights_file(n).backbone for n in list_backbones()] == list_backbones()
    by_file: dict[str, set] = {}
    for entry in known_files():
        by_file.setdefault(entry.file_name, set()).add((entry.url, entry.file_hash))
    assert all(len(v) == 1 for v in by_file.values())  # a file several backbones share is one file
    assert weights_file("ConvNeXtTiny").algorithm == "sha256" and weights_file("Xception").algorithm == "md5"
    assert weights_file("MobileNet").algorithm is None and weights_file("MobileNetV2").file_hash is None
    assert weights_file("nasnetmobile").download_name == "NASNet-mobile-no-top.h5"
    assert weights_file("MobileNetV2", 160).file_name.endswith("_1.0_160_no_top.h5")
    assert weights_file("MobileNetV2", 161).file_name == weights_file("MobileNetV2").file_name  # 224's


# --- where Keras looks, and what is there ------------------------------------------------------


def test_path_prints_the_keras_folder_and_creates_nothing(models):
    result = invoke("weights", "path")
    assert result.exit_code == 0 and result.stdout.strip() == str(models) == str(weights_dir())
    assert not models.parent.exists()


def test_status_missing_present_and_hash_mismatch(models):
    xception = weights_file("Xception")
    assert file_status(xception) == "missing"
    path = fabricate(models, xception.file_name)
    assert file_status(xception) == "hash mismatch"  # Keras would try to download it again
    assert file_status(verified(xception, path)) == "present"
    mobilenet = weights_file("MobileNet")
    fabricate(models, mobilenet.file_name)
    assert file_status(mobilenet) == "present"  # no hash: any file of that name


def test_list_json_and_text(models, monkeypatch):
    path = fabricate(models, weights_file("ConvNeXtTiny").file_name)
    patch_hash(monkeypatch, "ConvNeXtTiny", path)
    fabricate(models, weights_file("ConvNeXtSmall").file_name)
    result = invoke("weights", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = {r["backbone"]: r for r in json.loads(result.stdout)}
    assert len(rows) == 40
    assert rows["Xception"] == {
        "backbone": "Xception", "file": "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "url": "https://storage.googleapis.com/tensorflow/keras-applications/xception/"
               "xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "hash": "b0042744bf5b25fce3cb969f33bebb97", "algorithm": "md5",
        "path": str(models / "xception_weights_tf_dim_ordering_tf_kernels_notop.h5"), "status": "missing",
    }
    assert (rows["ConvNeXtTiny"]["status"], rows["ConvNeXtSmall"]["status"]) == ("present", "hash mismatch")
    assert (rows["MobileNet"]["hash"], rows["MobileNet"]["algorithm"]) == (None, None)

    sized = json.loads(invoke("weights", "list", "mobilenetv2", "--image-size", "96", "--json").stdout)
    assert [r["file"] for r in sized] == ["mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_96_no_top.h5"]
    text = invoke("weights", "list", "convnext")
    assert text.exit_code == 0
    assert "ConvNeXtSmall" in text.stdout and "hash mismatch" in text.stdout and "Xception" not in text.stdout
    assert "sha256 6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab" in text.stdout
    assert "no hash (Keras checks none)" in invoke("weights", "list", "MobileNet").stdout
    assert list_weights("xception")[0]["status"] == "missing"


# --- importing ---------------------------------------------------------------------------------


def test_import_verifies_and_installs_atomically(models, tmp_path):
    entry = weights_file("Xception")
    source = fabricate(tmp_path / "downloads", entry.file_name)
    [done] = import_weights([source], table=[verified(entry, source)])
    assert done.path == models / entry.file_name and done.backbones == ("Xception",) and done.verified == "md5"
    assert done.path.read_bytes() == source.read_bytes() and source.exists()
    assert sorted(p.name for p in models.iterdir()) == [entry.file_name]  # no temporary file left


def test_import_by_download_name_or_content_and_shared_files(models, tmp_path):
    nasnet = weights_file("NASNetMobile")
    source = fabricate(tmp_path, nasnet.download_name)  # as a browser saves it; Keras wants another name
    [done] = import_weights([source], table=[verified(nasnet, source)])
    assert done.path == models / "nasnet_mobile_no_top.h5"

    renamed = fabricate(tmp_path, "download (1).h5", b"other")
    entry = verified(weights_file("ResNet50"), renamed)
    [done] = import_weights([renamed], table=[weights_file("Xception"), entry])
    assert (done.path.name, done.backbones) == (entry.file_name, ("ResNet50",))

    shared = [entry, replace(entry, backbone="ResNet50Twin")]
    [done] = import_weights([renamed], table=shared)
    assert done.backbones == ("ResNet50", "ResNet50Twin")


def test_import_without_hash_checks_it_is_hdf5_holding_weights(models, tmp_path):
    import h5py

    entry = weights_file("MobileNetV2", 96)
    with h5py.File(tmp_path / entry.file_name, "w") as h5:
        h5["conv1/kernel"] = np.zeros((3, 3, 3, 8), np.float32)
    [done] = import_weights([tmp_path / entry.file_name])
    assert (done.backbones, done.verified) == (("MobileNetV2",), None)
    page = tmp_path / "html" / weights_file("MobileNet").file_name
    page.parent.mkdir()
    page.write_bytes(b"<html>403 Forbidden</html>")
    with pytest.raises(FeatxError, match="not an HDF5 weights file"):
        import_weights([page])
    empty = tmp_path / "empty" / weights_file("MobileNet").file_name
    empty.parent.mkdir()
    h5py.File(empty, "w").close()  # the right signature, no weights
    with pytest.raises(FeatxError, match="an empty file"):
        import_weights([empty])
    assert [p.name for p in models.iterdir()] == [entry.file_name]


def test_import_refusals_install_nothing(models, tmp_path):
    entry = weights_file("Xception")
    good = fabricate(tmp_path / "good", "efficientnetb0_notop.h5")
    bad = fabricate(tmp_path, entry.file_name, b"truncated")  # the real entry: wrong bytes
    with pytest.raises(FeatxError, match=f"its md5 is .*Keras expects {entry.file_hash} for Xception"):
        import_weights([good, bad], table=[verified(weights_file("EfficientNetB0"), good), entry])
    assert list(models.iterdir()) == []  # one bad file installs none, and no temporary file is left

    with pytest.raises(MissingFileError, match="The 'files' parameter: no such file") as caught:
        import_weights([tmp_path / "absent.h5"])
    assert isinstance(caught.value, FileNotFoundError)
    with pytest.raises(FeatxError, match="neither its name nor its content"):
        import_weights([fabricate(tmp_path, "notes.h5")])


def test_import_cli(models, tmp_path, monkeypatch):
    bad = fabricate(tmp_path, weights_file("DenseNet121").file_name)
    result = invoke("weights", "import", bad)
    assert result.exit_code == 1 and result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"error: {bad}: its md5 is ") and "download it again from https://" in line
    result = invoke("weights", "import", tmp_path / "absent.h5")
    assert result.exit_code == 1 and result.stderr.startswith("error: FILE: no such file")
    assert "featx weights list" in invoke("weights", "import", fabricate(tmp_path, "x.h5")).stderr

    good = fabricate(tmp_path / "ok", weights_file("DenseNet121").file_name, b"fixed")
    patch_hash(monkeypatch, "DenseNet121", good)
    result = invoke("weights", "import", good, "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [{"source": str(good), "path": str(models / good.name),
                                          "backbones": ["DenseNet121"], "verified": "md5"}]
    assert json.loads(invoke("weights", "list", "densenet121", "--json").stdout)[0]["status"] == "present"
    assert "(DenseNet121; md5 verified)" in invoke("weights", "import", good).stdout


def test_download_error_points_to_the_weights_commands():
    from featx.backbones.build import _download_error

    url = "https://storage.googleapis.com/tensorflow/keras-applications/xception/x_notop.h5"
    error = _download_error("Xception", Exception(f"URL fetch failure on {url}: None -- Connection refused"))
    message = str(error)
    assert "\n" not in message and url in message and error.reason == "Connection refused"
    assert "'featx weights import x_notop.h5'" in message and "'featx weights list'" in message
    assert "set the 'weights' parameter to a weights file (or to none" in message
    assert "set --weights to a weights file" in error.render(lambda param: "--" + param)


@pytest.mark.integration
def test_imported_file_makes_imagenet_work_offline(models, tmp_path):
    """End to end: import a MobileNet file (Keras checks no hash for it), then a fresh ``featx embed``
    with the default --weights imagenet, network closed, gets the vectors of exactly those weights.
    A fresh process, since Keras reads $KERAS_HOME once, when it is imported."""
    import h5py
    from keras.src.legacy.saving import legacy_h5_format  # the format of Keras' application files

    from featx.backend import import_keras

    keras = import_keras()
    model = keras.applications.MobileNet(include_top=False, weights=None, input_shape=(128, 128, 3), pooling="avg")
    source = tmp_path / weights_file("MobileNet", 128).file_name
    with h5py.File(source, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)
    assert invoke("weights", "import", source).exit_code == 0

    data = make_class_folder(tmp_path / "data", per_class=1)
    argv = ["embed", str(data), "-b", "MobileNet", "--image-size", "128", "--cache", str(tmp_path / "a"), "--json"]
    result = subprocess.run([sys.executable, "-m", "featx", *argv], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    imagenet = featx.load_features(json.loads(result.stdout)["cache"])
    custom = tmp_path / "same.weights.h5"
    model.save_weights(custom)
    same = featx.embed(data, "MobileNet", image_size=128, weights=str(custom), cache=tmp_path / "b")
    assert imagenet.X.shape == same.X.shape == (len(same.X), 1024)
    assert abs(imagenet.X - same.X).max() < 1e-5
