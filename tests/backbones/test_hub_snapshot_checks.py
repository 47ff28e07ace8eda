"""A snapshot whose configs would embed meaningless vectors, or fail deep inside keras-hub, is one line
naming the backbone option, before anything is built."""

from __future__ import annotations

import json

import pytest

from featx.backbones.hub import Snapshot
from featx.errors import OptionError
from tests.backbones.test_hub import write_snapshot

pytest.importorskip("safetensors")


def _edit(folder, name, **changes):
    path = folder / name
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize(("name", "changes", "match"), [
    ("preprocessor_config.json", {"image_std": [0, 0, 0]}, r"image_std \[0, 0, 0\]: a standard deviation must be above 0"),
    ("preprocessor_config.json", {"image_mean": "abc"}, r"image_mean \['abc'\] \(three numbers"),
    ("preprocessor_config.json", {"image_mean": [0.5, 0.5]}, r"image_mean \[0.5, 0.5\] \(three numbers"),
    ("preprocessor_config.json", {"resample": 9}, r"resample 9 \(one of Pillow's filter numbers"),
    ("preprocessor_config.json", {"rescale_factor": 0}, r"rescale_factor 0 \(a number above 0"),
    ("preprocessor_config.json", {"crop_size": {"height": 28, "width": 56}}, r"crop_size is 28x56; featx embeds square"),
    ("config.json", {"patch_size": 0}, r"patch size 0 \(a whole number"),
    ("preprocessor_config.json", {"crop_size": {"height": -5, "width": -5}}, r"input size -5 \(a whole number"),
])
def test_a_snapshot_declaring_nonsense_is_refused_in_one_line(tmp_path, name, changes, match):
    folder = write_snapshot(tmp_path / "snap")
    _edit(folder, name, **changes)
    with pytest.raises(OptionError, match=match) as raised:
        Snapshot.read(folder)
    assert raised.value.param == "backbone" and "\n" not in str(raised.value)


def test_a_truncated_weights_file_is_one_line(tmp_path):
    folder = write_snapshot(tmp_path / "snap", model_type="vit")
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:20])
    with pytest.raises(OptionError, match="is not a readable safetensors file"):
        Snapshot.read(folder)


def test_a_sound_snapshot_still_reads(tmp_path):
    snapshot = Snapshot.read(write_snapshot(tmp_path / "snap"))
    assert (snapshot.input_size, snapshot.patch_size, snapshot.std) == (224, 14, (0.229, 0.224, 0.225))


@pytest.mark.parametrize("declared", [1, 3])
def test_a_config_declaring_other_layers_than_its_weights_hold_is_refused(tmp_path, declared):
    keys = ("embeddings.cls_token", "encoder.layer.0.norm1.weight", "encoder.layer.1.norm1.weight")
    folder = write_snapshot(tmp_path / "snap", keys=keys, extra={"num_hidden_layers": declared})
    with pytest.raises(OptionError, match=rf"declares num_hidden_layers {declared}, but its weights hold 2 layers"):
        Snapshot.read(folder)
    _edit(folder, "config.json", num_hidden_layers=2)
    assert Snapshot.read(folder).family == "dinov2"
