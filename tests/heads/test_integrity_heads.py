"""Integrity of what a head depends on: the backbone file its configuration names, its own
head.json, and a head folder being replaced (never lost, whatever moment a process dies)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from featx.config import EmbedConfig
from featx.errors import CacheError, MissingFileError
from featx.heads import fit_head, load_head
from featx.heads.store import find_heads
from tests.heads.test_heads import blob_features


def _file_config(tmp_path, data: bytes = b"model bytes", kind: str = "model") -> EmbedConfig:
    path = tmp_path / ("m.keras" if kind == "model" else "w.weights.h5")
    path.write_bytes(data)
    digest = hashlib.sha256(data).hexdigest()
    common = dict(input_size=32, resize="stretch", pooling="avg", preprocessing="none")
    if kind == "model":
        return EmbedConfig(backbone=f"custom:m.keras:sha256:{digest}", weights="embedded",
                           model_path=str(path), **common)
    return EmbedConfig(backbone="MobileNetV2", weights=f"w.weights.h5:sha256:{digest}",
                       weights_path=str(path), **common)


# --- 1. a stored configuration reloads only the file it was made with ------------------------------


@pytest.mark.parametrize("kind", ["model", "weights"])
def test_a_configuration_gives_its_file_only_while_it_has_the_recorded_bytes(tmp_path, kind):
    config = _file_config(tmp_path, kind=kind)
    path = config.model_path or config.weights_path
    assert config.source_file() == path
    with open(path, "r+b") as handle:  # same size, other bytes
        handle.write(b"M")
    found = hashlib.sha256(open(path, "rb").read()).hexdigest()
    expected = hashlib.sha256(b"model bytes").hexdigest()
    with pytest.raises(CacheError, match=f"{path}.*changed.*sha256 {expected[:16]}.* expected, {found[:16]}.* "
                                         "found.*put the original file back.*re-embed"):
        config.source_file()
    os.remove(path)
    with pytest.raises(MissingFileError, match=f"{path} is gone.*put it back.*re-embed"):
        config.source_file()


def test_a_registry_backbone_with_downloaded_weights_has_no_file_to_check():
    config = EmbedConfig(backbone="MobileNetV2", weights="imagenet", input_size=32, resize="stretch",
                         pooling="avg", preprocessing="tf")
    assert config.source_file() is None


def test_a_file_is_hashed_once_per_process_while_unchanged(tmp_path, monkeypatch):
    import featx.config

    calls = []
    real = featx.config.sha256_file
    monkeypatch.setattr(featx.config, "sha256_file", lambda path: calls.append(path) or real(path))
    config = _file_config(tmp_path, b"hashed once")
    for _ in range(3):
        config.source_file()
    assert len(calls) == 1
    with open(config.model_path, "r+b") as handle:  # rewritten in place: hashed again, and refused
        handle.write(b"H")
    with pytest.raises(CacheError, match="changed"):
        config.source_file()
    assert len(calls) == 2


# --- 6. the whole head is pinned, not only its estimator ------------------------------------------


@pytest.fixture
def saved(tmp_path):
    return fit_head(blob_features(), "logreg").save(tmp_path / "head")


def _meta(path):
    return json.loads((path / "head.json").read_text())


def test_an_edited_head_json_is_refused(saved):
    meta = _meta(saved)
    meta["classes"] = meta["classes"][::-1]  # would silently relabel every prediction
    (saved / "head.json").write_text(json.dumps(meta, indent=1))
    with pytest.raises(CacheError, match="head.json was modified after the head was saved.*refit the head"):
        load_head(saved)


def test_head_json_may_be_reformatted(saved):
    (saved / "head.json").write_text(json.dumps(_meta(saved), indent=4, sort_keys=True))
    assert load_head(saved).classes == ("ant", "bee", "cat")


def test_a_head_of_format_1_still_loads_and_a_sealed_one_needs_its_checksum(saved):
    from featx.heads.headfile import content_checksum

    meta = _meta(saved)
    assert meta["version"] == 2 and meta["checksum"] == content_checksum(meta)
    del meta["checksum"]
    (saved / "head.json").write_text(json.dumps(meta))
    with pytest.raises(CacheError, match="damaged \\(missing checksum\\)"):
        load_head(saved)
    (saved / "head.json").write_text(json.dumps({**meta, "version": 1}))  # as featx wrote heads before
    assert load_head(saved).classes == ("ant", "bee", "cat")


# --- 9. replacing a saved head is atomic, and a half-done replace is finished on the next use ------


def _aside(path, pid=999999):
    return path.parent / f".{path.name}.replaced-{pid}"


def test_a_head_moved_aside_by_a_killed_replace_is_put_back(cache_dir):
    head = fit_head(blob_features(), "logreg")
    path = head.save(cache_dir / "heads" / "mine")
    path.rename(_aside(path))  # killed after moving the old head aside, before the new one came in
    assert find_heads() == [path]
    assert load_head("mine").classes == head.classes and not _aside(path).exists()


def test_a_leftover_old_head_is_removed_once_the_new_one_is_in_place(cache_dir):
    path = fit_head(blob_features(), "logreg").save(cache_dir / "heads" / "mine")
    shutil.copytree(path, _aside(path))  # killed after the new head came in, before the old was deleted
    assert load_head(path).kind == "logreg" and not _aside(path).exists()
    shutil.copytree(path, _aside(path))
    fit_head(blob_features(), "knn").save(path)
    assert load_head(path).kind == "knn" and sorted(os.listdir(path.parent)) == ["mine"]
    other = path.parent / "mine.replaced-7"  # a head whose name looks like an aside of "mine"
    fit_head(blob_features(), "logreg").save(other)
    other.rename(_aside(other))
    assert load_head(path).kind == "knn" and load_head(other).kind == "logreg"


_REPLACE = """
import sys
from tests.heads.test_heads import blob_features
from featx.heads import fit_head
fit_head(blob_features(classes=("x", "y")), "knn").save(sys.argv[1])
"""


@pytest.mark.integration  # spawns processes
@pytest.mark.parametrize("hit, survivor", [(1, "logreg"), (2, "knn")])
def test_a_replace_killed_at_any_step_leaves_the_old_or_the_new_head(tmp_path, hit, survivor):
    path = fit_head(blob_features(), "logreg").save(tmp_path / "head")
    env = {**os.environ, "FEATX_CRASH_AT": f"head-replace:{hit}"}
    done = subprocess.run([sys.executable, "-c", _REPLACE, str(path)], env=env, capture_output=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    loaded = load_head(path)
    assert loaded.kind == survivor
    assert loaded.classes == (("ant", "bee", "cat") if survivor == "logreg" else ("x", "y"))
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".head.saving")) == ["head"]


# --- 1, end to end: a head whose custom backbone file was replaced --------------------------------


def _tiny_backbone(path, seed):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 3))
    keras.Model(inputs, keras.layers.Conv2D(4, 3, activation="relu")(inputs), name="tiny").save(path)
    return path


@pytest.mark.integration  # builds Keras models
def test_a_head_refuses_a_replaced_backbone_file(tmp_path, cache_dir):
    import featx
    from featx.heads import predict_images
    from featx.model.export import export
    from tests.imagegen import make_class_folder

    data = make_class_folder(tmp_path / "data", per_class=3, size=(16, 16))
    backbone = _tiny_backbone(tmp_path / "tiny.keras", seed=1)
    head = fit_head(featx.embed(data, str(backbone)), "logreg", test_size=0)
    new = make_class_folder(tmp_path / "new", classes=("cat",), per_class=2, size=(16, 16))
    expected = predict_images(head, [new]).proba

    _tiny_backbone(tmp_path / "other.keras", seed=2)
    os.replace(tmp_path / "other.keras", backbone)  # same name and shape, other weights
    (new / "cat" / "cat_0.png").write_bytes((data / "dog" / "dog_0.png").read_bytes())
    cache_files = sorted(p.stat().st_mtime_ns for p in cache_dir.rglob("*.h5"))
    for action in (lambda: predict_images(head, [new]), lambda: export(head, tmp_path / "x.keras")):
        with pytest.raises(CacheError, match=f"{backbone} was changed since"):
            action()
    assert sorted(p.stat().st_mtime_ns for p in cache_dir.rglob("*.h5")) == cache_files  # nothing cached
    assert np.asarray(expected).shape == (2, 2)
