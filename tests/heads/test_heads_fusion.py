"""Feature fusion: heads on two backbones' vectors of the same images, joined by content id."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from featx.errors import FeatxError
from featx.features.fusion import fuse_features
from featx.heads import compare_heads, fit_head, load_head
from featx.options import EmbedOptions
from tests.heads.test_heads import blob_features
from tests.imagegen import make_class_folder

OTHER = EmbedOptions("ResNet50", weights="none", image_size=32).resolve()


@pytest.fixture(scope="module")
def parts():
    """The same 150 images under two backbones: 16 + 6 dimensions, the second cache in another row order."""
    first = blob_features(std=10.0)  # too noisy alone; the second backbone's vectors add what it misses
    rng = np.random.default_rng(1)
    X = rng.normal(0.0, 3.0, (3, 6))[first.y] + rng.normal(0.0, 3.0, (150, 6))  # same images, same labels ...
    second = replace(blob_features(dim=6, config=OTHER), X=X.astype(np.float32), ids=first.ids, y=first.y)
    order = np.random.default_rng(0).permutation(len(first))  # ... stored in another order
    return first, second.subset(order)


def test_fused_vectors_sit_side_by_side_joined_by_content_id(parts):
    first, second = parts
    fused = fuse_features([first, second])
    assert fused.X.shape == (150, 22) and fused.feature_dim == 22
    row = {cid: i for i, cid in enumerate(second.ids)}
    for i in (0, 7, 149):
        assert np.array_equal(fused.X[i], np.concatenate([first.X[i], second.X[row[first.ids[i]]]]))
    assert np.array_equal(fused.ids, first.ids) and np.array_equal(fused.y, first.y)
    assert fused.fingerprint not in (first.fingerprint, second.fingerprint)
    assert fuse_features([first, second]).fingerprint == fused.fingerprint  # the same parts: the same vectors


def test_a_head_on_fused_vectors_is_named_saved_and_refused_for_export(parts, tmp_path):
    first, second = parts
    fused = fuse_features([first, second])
    head = fit_head(fused, "logreg")
    assert head.name == "logreg-MobileNetV2+ResNet50" and head.feature_dim == 22 and head.is_fused
    alone = fit_head(first, "logreg").metrics["test"]["accuracy"]
    assert head.metrics["test"]["accuracy"] > alone  # the second backbone adds information
    loaded = load_head(head.save(tmp_path / "fused"))
    assert loaded.backbone_name == "MobileNetV2+ResNet50"
    assert np.array_equal(loaded.predict_proba(fused.X), head.predict_proba(fused.X))
    assert [c.backbone for c in loaded.embed_configs()] == ["MobileNetV2", "ResNet50"]
    with pytest.raises(FeatxError, match="fused vectors of MobileNetV2\\+ResNet50; fine-tune and export need a head "
                                         "of one backbone: featx fit-head --backbone MobileNetV2"):
        loaded.embed_config()
    with pytest.raises(FeatxError, match="fitted on MobileNetV2\\+ResNet50 vectors; .* holds MobileNetV2 vectors"):
        loaded.check_compatible(first)
    rows = compare_heads([first, second, fused], ["logreg"])
    assert [r["backbone"] for r in rows][0] == "MobileNetV2+ResNet50"


def test_caches_of_other_images_or_labels_are_not_fused(parts):
    first, second = parts
    with pytest.raises(FeatxError, match=r"they hold different images \(3 only in the first, 0 only in the second\); "
                                         "embed the same dataset with both backbones"):
        fuse_features([first, second.subset(np.arange(3, 150))])
    relabelled = replace(second, y=np.where(second.y == 0, 1, second.y))
    with pytest.raises(FeatxError, match="images have other labels in one than in the other"):
        fuse_features([first, relabelled])


@pytest.mark.integration  # embeds with two Keras backbones
def test_fusion_from_the_command_line(tmp_path, monkeypatch):
    import json

    from typer.testing import CliRunner

    from featx.cli import app

    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path / ".featx"))
    runner = CliRunner()

    def run(*args, code=0):
        done = runner.invoke(app, [str(a) for a in args])
        assert done.exit_code == code, (done.stdout, done.stderr, done.exception)
        return done

    data = make_class_folder(tmp_path / "data", classes=("cat", "dog"), per_class=5, size=(40, 40))
    for backbone in ("MobileNetV2", "MobileNetV3Small"):
        run("embed", data, "--backbone", backbone, "--weights", "none", "--image-size", "32", "--quiet")
    fused = json.loads(run("fit-head", "--backbone", "MobileNetV2+MobileNetV3Small", "--json").stdout)
    assert fused["name"] == "logreg-MobileNetV2+MobileNetV3Small" and fused["feature_dim"] == 1280 + 576
    rows = json.loads(run("compare", "--backbones", "MobileNetV2,MobileNetV3Small,MobileNetV2+MobileNetV3Small",
                          "--heads", "logreg", "--json").stdout)
    assert sorted(r["backbone"] for r in rows) == ["MobileNetV2", "MobileNetV2+MobileNetV3Small", "MobileNetV3Small"]
    evaluation = json.loads(run("evaluate", fused["name"], "--json").stdout)
    assert evaluation["n"] == 2 and " + " in evaluation["cache"]  # its test images, from both caches
    predicted = run("predict", fused["name"], data / "cat").stdout.splitlines()
    assert len(predicted) == 1 + 5 and predicted[0].startswith("path,label,confidence")
    refused = run("export", fused["name"], "-o", tmp_path / "m.keras", code=1)
    assert "fine-tune and export need a head of one backbone: featx fit-head --backbone MobileNetV2" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    refused = run("fine-tune", fused["name"], code=1)
    assert "fine-tune and export need a head of one backbone" in refused.stderr
