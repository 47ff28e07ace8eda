"""Transformer backbones through keras-hub, without Keras: names, snapshot folders, what they declare,
the fingerprint, and the one-line errors (tests/backbones/test_hub_fidelity.py computes the vectors)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import numpy as np
import pytest

from featx.backbones.hub import is_hub_backbone, tree_sha256, verified_folder
from featx.backbones.hub_table import HUB_BACKBONES, HUB_FAMILIES, HUB_POOLINGS, get_hub_backbone, list_hub_backbones
from featx.config import short_name
from featx.errors import CacheError, MissingDependencyError, OptionError, WeightsUnavailableError
from featx.options import EmbedOptions

needs_hub = pytest.mark.skipif(importlib.util.find_spec("keras_hub") is None, reason='pip install "featx[hub]"')
IMAGENET = ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])


def write_snapshot(folder, model_type="dinov2", *, image_size=518, crop=224, mean_std=IMAGENET, keys=("embeddings.cls_token",),
                   extra=None):
    """A Hugging Face snapshot folder as save_pretrained writes it (tiny safetensors, configs)."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = {"model_type": model_type, "image_size": image_size, "patch_size": 14, "hidden_size": 8, **(extra or {})}
    (folder / "config.json").write_text(json.dumps(config))
    if crop:
        processor = {"do_center_crop": True, "crop_size": {"height": crop, "width": crop}, "size": {"shortest_edge": 256}}
        if mean_std:
            processor.update(image_mean=mean_std[0], image_std=mean_std[1])
        (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    save_file({key: np.ones((1, 8), np.float32) for key in keys}, str(folder / "model.safetensors"))
    (folder / "README.md").write_text("model card")
    return folder


def test_the_registry_lists_the_curated_transformers_with_their_facts():
    assert set(list_hub_backbones("dinov2")) == {
        "dinov2_small", "dinov2_base", "dinov2_large",
        "dinov2_with_registers_small", "dinov2_with_registers_base", "dinov2_with_registers_large"}
    assert {"dinov3_vit_small_lvd1689m", "dinov3_vit_base_lvd1689m", "siglip_base_patch16_224",
            "clip_vit_base_patch16"} <= set(HUB_BACKBONES)
    for spec in HUB_BACKBONES.values():
        family = HUB_FAMILIES[spec.family]
        assert spec.input_size % dict(spec.arch)["patch_size"] == 0, spec.name
        assert family.default_pooling in family.poolings and set(family.poolings) <= set(HUB_POOLINGS)
        assert spec.feature_dims.get("cls+avg", 2 * spec.width) == 2 * spec.width
        assert spec.handle.startswith("kaggle://keras/") and spec.handle.rsplit("/", 1)[1].isdigit()  # pinned
        assert spec.params > 0 and spec.width == dict(spec.arch)["hidden_dim"]
    assert HUB_BACKBONES["siglip_base_patch16_224"].feature_dims == {"avg": 768, "pooled": 768}  # no class token
    assert HUB_BACKBONES["clip_vit_base_patch16"].feature_dims["pooled"] == 512
    assert get_hub_backbone("DINOv2_Small").name == "dinov2_small"


@needs_hub
def test_a_curated_name_resolves_with_its_family_defaults():
    config = EmbedOptions("dinov2_small", weights="none").resolve()
    assert config.backbone == "hub:dinov2_small" and config.is_hub and config.display_name == "dinov2_small"
    assert (config.input_size, config.pooling, config.preprocessing) == (224, "cls+avg", "torch")  # ImageNet mean/std
    siglip = EmbedOptions("siglip_base_patch16_224", weights="none").resolve()
    assert (siglip.pooling, siglip.preprocessing) == ("pooled", "tf")  # 0.5/0.5 is [-1, 1]
    clip = EmbedOptions("clip_vit_base_patch16", weights="none", pooling="cls").resolve()
    assert clip.preprocessing == "meanstd:0.48145466,0.4578275,0.40821073:0.26862954,0.26130258,0.27577711"
    fingerprints = {EmbedOptions("dinov2_small", weights="none", pooling=p).resolve().fingerprint
                    for p in ("cls", "avg", "cls+avg")}
    assert len(fingerprints) == 3
    assert EmbedOptions("MobileNetV2", weights="none").resolve().pooling == "avg"  # Keras rows keep theirs


@needs_hub
def test_a_snapshot_folder_declares_size_and_normalisation_and_is_hashed(tmp_path):
    folder = write_snapshot(tmp_path / "dinov2-small", mean_std=([0.5, 0.4, 0.3], [0.2, 0.25, 0.3]))
    assert is_hub_backbone(str(folder)) and not is_hub_backbone("MobileNetV2")
    config = EmbedOptions(str(folder)).resolve()
    assert config.backbone == "hub:dinov2-small" and config.weights == f"sha256:{tree_sha256(folder)}"
    assert (config.input_size, config.pooling) == (224, "cls+avg")  # the processor's crop, not config's 518
    assert config.preprocessing == "meanstd:0.5,0.4,0.3:0.2,0.25,0.3"
    assert config.resize == "pil:bicubic:short=256:crop=224x224"  # BitImageProcessor's bicubic: none declared
    assert config.model_path == str(folder) and verified_folder(config) == folder
    (folder / "README.md").write_text("edited card")  # not a weight or config: same snapshot
    assert EmbedOptions(str(folder)).resolve() == config
    write_snapshot(folder, keys=("embeddings.cls_token", "layernorm.weight"))
    changed = EmbedOptions(str(folder)).resolve()
    assert changed.fingerprint != config.fingerprint
    with pytest.raises(CacheError, match="was changed since"):
        verified_folder(config)
    smaller = EmbedOptions(str(folder), image_size=28).resolve()  # DINOv2 interpolates; its pipeline scales
    assert (smaller.input_size, smaller.resize) == (28, "pil:bicubic:short=32:crop=28x28")


@needs_hub
def test_an_undeclared_normalisation_is_the_processors_default_else_the_familys(tmp_path):
    dinov2 = write_snapshot(tmp_path / "a", mean_std=None)  # BitImageProcessor's own default, as in transformers
    assert EmbedOptions(str(dinov2)).resolve().preprocessing == (
        "meanstd:0.48145466,0.4578275,0.40821073:0.26862954,0.26130258,0.27577711")
    bare = write_snapshot(tmp_path / "c", crop=None)  # no preprocessor_config.json: the family's, stretched
    assert (EmbedOptions(str(bare)).resolve().preprocessing, EmbedOptions(str(bare)).resolve().resize) == (
        "torch", "stretch")
    vit = write_snapshot(tmp_path / "b", "vit", image_size=32, crop=None, extra={"patch_size": 8})
    config = EmbedOptions(str(vit)).resolve()
    assert (config.input_size, config.pooling, config.preprocessing) == (32, "cls", "tf")


@needs_hub
@pytest.mark.parametrize("make,kwargs,error,match", [
    (lambda d: d.mkdir(), {}, OptionError, "is not a model folder \\(it has no config.json\\)"),
    (lambda d: write_snapshot(d, "bert"), {}, OptionError,
     "holds a transformers 'bert' model; featx embeds transformers snapshots of model type dinov2"),
    (lambda d: write_snapshot(d), {"pooling": "pooled"}, OptionError, "pooling' parameter pooled: .* pools cls, avg, cls\\+avg"),
    (lambda d: write_snapshot(d), {"pooling": "max"}, OptionError, "pooling' parameter max: .* pools cls, avg"),
    (lambda d: write_snapshot(d), {"image_size": 30}, OptionError, "30 is not a multiple of .* patch size 14"),
    (lambda d: write_snapshot(d, "vit", image_size=28, crop=None), {"image_size": 56}, OptionError,
     "runs at its native 28 pixels only"),
    (lambda d: write_snapshot(d), {"weights": "imagenet"}, OptionError, "brings its own weights"),
    (lambda d: write_snapshot(d), {"preprocess": "torch"}, OptionError, "normalised as its snapshot declares"),
])
def test_folders_and_options_that_cannot_work_fail_in_one_line(tmp_path, make, kwargs, error, match):
    folder = tmp_path / "model"
    make(folder)
    with pytest.raises(error, match=match) as raised:
        EmbedOptions(str(folder), **kwargs).resolve()
    assert "\n" not in str(raised.value)


@needs_hub
def test_a_curated_name_checks_its_pooling_before_any_download():
    with pytest.raises(OptionError, match="pooling' parameter pooled: dinov2_small \\(dinov2\\) pools cls, avg, cls\\+avg"):
        EmbedOptions("dinov2_small", pooling="pooled").resolve()


@needs_hub
def test_a_keras_pooling_on_a_keras_application_is_refused_for_transformer_poolings():
    with pytest.raises(OptionError, match="pooling' parameter cls applies to transformer backbones"):
        EmbedOptions("MobileNetV2", weights="none", pooling="cls").resolve()


@needs_hub
@pytest.mark.parametrize("handle", ["hf://facebook/dinov2-small", "kaggle://keras/dinov2/keras/dinov2_small/1",
                                    "dinov2_small"])
def test_offline_a_handle_fails_in_one_line_naming_the_caches(tmp_path, monkeypatch, handle):
    # conftest routes every request to a closed port: this is what a machine without internet sees
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kaggle"))
    with pytest.raises(WeightsUnavailableError) as raised:
        EmbedOptions(handle).resolve()
    message = str(raised.value)
    shown = handle if "://" in handle else get_hub_backbone(handle).handle
    assert message.startswith(f"Could not download {shown} (") and "\n" not in message
    assert "$KAGGLEHUB_CACHE" in message and "$HF_HOME" in message and "pass the snapshot folder as the 'backbone'" in message


def test_without_the_extra_a_hub_name_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "keras_hub" else real(name))
    with pytest.raises(MissingDependencyError, match=r'need keras-hub, which is not installed: pip install "featx\[hub\]"'):
        EmbedOptions("dinov2_small", weights="none").resolve()


def test_short_names_for_cache_files():
    assert short_name("hf://facebook/dinov2-base") == "dinov2-base"
    assert short_name("kaggle://keras/dinov2/keras/dinov2_small/1") == "dinov2_small"
    assert short_name("dinov2_small") == "dinov2_small"


def test_dinov2_position_embeddings_are_resized_as_pytorch_does():
    torch = pytest.importorskip("torch")
    from featx.backbones.hub_build import _bicubic_matrix

    table = np.random.default_rng(0).normal(size=(37, 37, 5))
    for size in (16, 4, 40):
        weights = _bicubic_matrix(37, size)
        ours = np.einsum("ih,hwd,jw->ijd", weights, table, weights)
        grid = torch.from_numpy(table).permute(2, 0, 1)[None]
        theirs = torch.nn.functional.interpolate(grid, size=(size, size), mode="bicubic", align_corners=False)
        assert np.abs(ours - theirs[0].permute(1, 2, 0).numpy()).max() < 1e-10


def test_the_cli_lists_the_transformers_beside_the_keras_applications():
    from typer.testing import CliRunner

    from featx.cli import app

    result = CliRunner().invoke(app, ["backbones", "dinov2_small"])
    assert result.exit_code == 0, result.output
    assert "dinov2_small" in result.output and "cls+avg" in result.output and "768/384/384" in result.output
    listed = CliRunner().invoke(app, ["backbones", "--json"])
    rows = {row["name"]: row for row in json.loads(listed.output)}
    assert "MobileNetV2" in rows and rows["siglip_base_patch16_224"]["feature_dims"] == {"avg": 768, "pooled": 768}
    assert rows["dinov2_small"]["family"] == "dinov2" and rows["dinov2_small"]["pooling"] == "cls+avg"


def test_importing_featx_hub_does_not_import_keras():
    code = "import sys, featx.backbones.hub, featx.backbones.applications; print('keras' in sys.modules or 'tensorflow' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False", done.stderr[-2000:]


def test_featx_weights_hub_lists_the_pinned_downloads_and_what_the_cache_holds(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from featx.cli import app

    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path))
    present = tmp_path / "models" / "keras" / "dinov2" / "keras" / "dinov2_small" / "1"
    present.mkdir(parents=True)
    (present / "config.json").write_text("{}")
    rows = {r["backbone"]: r for r in json.loads(CliRunner().invoke(app, ["weights", "hub", "--json"]).output)}
    assert set(rows) == set(HUB_BACKBONES)
    assert rows["dinov2_small"] == {"backbone": "dinov2_small", "path": str(present), "status": "present",
                                    "handle": "kaggle://keras/dinov2/keras/dinov2_small/1"}
    assert rows["dinov2_base"]["status"] == "missing"
    text = CliRunner().invoke(app, ["weights", "hub", "siglip"])
    assert text.exit_code == 0 and "siglip_base_patch16_224" in text.output and "$KAGGLEHUB_CACHE" in text.output


@needs_hub
def test_featx_backbones_folder_says_how_a_snapshots_images_are_prepared(tmp_path):
    from typer.testing import CliRunner

    from featx.cli import app

    folder = write_snapshot(tmp_path / "dinov2-small")
    shown = CliRunner().invoke(app, ["backbones", str(folder)])
    assert shown.exit_code == 0, shown.output
    assert "Pillow bicubic: shortest edge 256, centre crop 224x224" in shown.output
    facts = json.loads(CliRunner().invoke(app, ["backbones", str(folder), "--json"]).output)
    assert (facts["resize"], facts["input_size"], facts["preprocessing"]) == (
        "pil:bicubic:short=256:crop=224x224", 224, "torch")
    assert EmbedOptions(str(folder)).resolve().resize == facts["resize"]  # what embed follows
    broken = CliRunner().invoke(app, ["backbones", str(tmp_path)])  # a folder, but no model
    assert broken.exit_code != 0 and "no config.json" in broken.output and "Traceback" not in broken.output


@needs_hub
@pytest.mark.parametrize(("converter", "resize"), [
    ({"image_size": [224, 224]}, "crop"),  # keras.layers.Resizing in the converter crops to the aspect ratio by default
    ({"image_size": [224, 224], "crop_to_aspect_ratio": False}, "stretch"),
    ({"image_size": [224, 224], "crop_to_aspect_ratio": False, "pad_to_aspect_ratio": True}, "pad"),
    (None, "stretch"),  # no converter saved: nothing declared
])
def test_a_keras_hub_preset_resizes_as_its_image_converter(tmp_path, converter, resize):
    from safetensors.numpy import save_file

    folder = tmp_path / "preset"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"registered_name": "keras_hub>DINOV2Backbone",
                                                    "config": {"patch_size": 14, "image_shape": [224, 224, 3]}}))
    if converter:
        (folder / "image_converter.json").write_text(json.dumps({"config": converter}))
    save_file({"w": np.ones((1, 8), np.float32)}, str(folder / "model.safetensors"))
    assert EmbedOptions(str(folder)).resolve().resize == resize
    assert EmbedOptions(str(folder), resize="stretch").resolve().resize == "stretch"  # an explicit choice wins


@needs_hub
def test_jpeg_draft_is_off_under_a_snapshots_pipeline(tmp_path):
    folder = write_snapshot(tmp_path / "dinov2")
    drafted = EmbedOptions(str(folder), jpeg_draft=True).resolve()
    assert not drafted.jpeg_draft and drafted == EmbedOptions(str(folder)).resolve()  # the same cache
    assert EmbedOptions(str(folder), jpeg_draft=True, resize="stretch").resolve().jpeg_draft  # stretch may draft
