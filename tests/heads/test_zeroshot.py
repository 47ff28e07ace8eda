"""The zero-shot head: class names -> prompts -> a linear head whose probabilities are exactly the
reference model's (transformers' ``logits_per_image``: softmax for CLIP, sigmoid for SigLIP), on
tiny random snapshots the tests make; fitted from a cache like any head; refused in one line on a
cache whose backbone has no text tower."""

from __future__ import annotations

import hashlib
import importlib.util

import numpy as np
import pytest

from featx.errors import OptionError
from featx.features.vectors import Features
from featx.heads import compare_heads, fit_head, load_head, make_head
from featx.heads.fit import compared_heads
from featx.heads.store import save_head
from featx.heads.zeroshot import DEFAULT_TEMPLATES, ZeroShotHead
from featx.options import EmbedOptions
from tests.backbones.textmodels import MAX_POSITIONS, make_clip, make_siglip

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("transformers", "torch", "tokenizers", "sentencepiece")),
    reason="the reference needs transformers, torch, tokenizers and sentencepiece (featx[test,torch,hub])")

CLASSES = ("cat", "dog", "red_dress")
TEMPLATE = "a photo of a {}."
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    root = tmp_path_factory.mktemp("zeroshot")
    return {"clip": make_clip(root / "clip"), "siglip": make_siglip(root / "siglip")}


def _reference(folder, family, n_images=12):
    """(image features, reference probabilities) from transformers for random images and CLASSES."""
    import torch
    import transformers

    model = (transformers.CLIPModel if family == "clip" else transformers.SiglipModel).from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    texts = [TEMPLATE.format(name.replace("_", " ")) for name in CLASSES]
    inputs = tokenizer(texts, padding=True if family == "clip" else "max_length", truncation=True,
                       max_length=MAX_POSITIONS, return_tensors="pt")
    if family == "siglip":
        inputs.pop("attention_mask")  # as trained: see tests/backbones/test_text_tower.py
    pixels = torch.from_numpy(np.random.default_rng(3).normal(size=(n_images, 3, 32, 32)).astype(np.float32))
    with torch.no_grad():
        image = model.get_image_features(pixel_values=pixels)
        logits = model(**inputs, pixel_values=pixels).logits_per_image
    image = getattr(image, "pooler_output", image).numpy()
    proba = logits.softmax(dim=1) if family == "clip" else torch.sigmoid(logits)
    return image, proba.numpy()


def _features(X, folder, classes=CLASSES) -> Features:
    config = EmbedOptions("MobileNetV2", weights="none", image_size=32).resolve()
    n = len(X)
    sources = {**config.sources(), "model_path": str(folder) if folder else None}
    return Features(X=X.astype(np.float32), y=np.arange(n) % len(classes), classes=tuple(classes),
                    paths=np.asarray([f"/data/{i}.png" for i in range(n)], dtype=object),
                    ids=np.asarray([hashlib.sha256(bytes([i])).hexdigest() for i in range(n)], dtype=object),
                    split=np.asarray(["train", "test"] * (n // 2), dtype=object), config=config.identity(),
                    fingerprint=config.fingerprint, sources=sources)


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_probabilities_equal_the_reference_models(snapshots, family):
    X, expected = _reference(snapshots[family], family)
    head = make_head("zeroshot", text_model=str(snapshots[family]), class_names=list(CLASSES), templates=[TEMPLATE])
    proba = head.fit(X).predict_proba(X)
    assert head.activation_ == ("softmax" if family == "clip" else "sigmoid")
    assert np.abs(proba - expected).max() / np.abs(expected).max() < TOLERANCE
    np.testing.assert_allclose(proba, expected, rtol=TOLERANCE, atol=1e-6)
    assert list(head.predict(X)) == list(expected.argmax(axis=1))


def test_fit_head_takes_classes_and_text_tower_from_the_cache_and_it_saves_and_compares(snapshots, tmp_path):
    X, expected = _reference(snapshots["clip"], "clip")
    features = _features(X, snapshots["clip"])
    head = fit_head(features, "zeroshot", templates=[TEMPLATE])
    assert head.kind == "zeroshot" and head.classes == CLASSES and "test" in head.metrics
    np.testing.assert_allclose(head.predict_proba(X), expected, rtol=TOLERANCE, atol=1e-6)
    assert head.estimator.prompts_[2] == ["a photo of a red dress."]
    again = load_head(save_head(head, tmp_path / "zs"))
    np.testing.assert_allclose(again.predict_proba(X), expected, rtol=TOLERANCE, atol=1e-6)
    board = compare_heads([features], ["zeroshot", "knn"], params={"zeroshot": {"templates": [TEMPLATE]}})
    assert {row["head"] for row in board} == {"zeroshot", "knn"}
    assert "zeroshot" not in compared_heads(None)  # named only: most caches have no text tower


def test_prompt_ensembles_and_own_prompts(snapshots):
    from featx.backbones.text_tower import TextTower

    tower = TextTower.from_folder(snapshots["siglip"])
    X = np.random.default_rng(0).normal(size=(4, tower.width))
    head = ZeroShotHead(text_model=str(snapshots["siglip"]), class_names=["cat", "dog"]).fit(X)
    assert len(head.prompts_[0]) == len(DEFAULT_TEMPLATES) and head.prompts_[1][0] == "a photo of a dog."
    vectors = tower.encode(head.prompts_[0])
    mean = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).mean(axis=0)
    expected = mean / np.linalg.norm(mean) * np.exp(tower.logit_scale)
    np.testing.assert_allclose(head.coef_[0], expected, rtol=1e-5, atol=1e-6 * np.abs(expected).max())  # float32 sums
    own = ZeroShotHead(text_model=str(snapshots["siglip"]), class_names=["cat", "dog"],
                       prompts={"dog": ["a dog"], "cat": "a cat"}).fit(X)
    assert own.prompts_ == [["a cat"], ["a dog"]]
    listed = ZeroShotHead(text_model=str(snapshots["siglip"]), prompts=[["a cat"], "a dog"]).fit(X)
    np.testing.assert_allclose(listed.coef_, own.coef_)


def test_refusals_are_one_line(snapshots):
    X = np.random.default_rng(0).normal(size=(6, 8))
    with pytest.raises(OptionError, match=r"'text_model' parameter: the zeroshot head needs the text tower"):
        fit_head(_features(X, None), "zeroshot")
    with pytest.raises(OptionError, match="text vectors are 24 wide, the image vectors 8"):
        make_head("zeroshot", text_model=str(snapshots["clip"]), class_names=["a", "b"]).fit(X)
    with pytest.raises(OptionError, match="'prompts' parameter has no prompt for the class 'b'"):
        ZeroShotHead(text_model=str(snapshots["clip"]), class_names=["a", "b"], prompts={"a": "x"}).fit(X)
    with pytest.raises(OptionError, match="'templates' parameter: every template holds {}"):
        ZeroShotHead(text_model=str(snapshots["clip"]), class_names=["a"], templates=["no slot"]).fit(X)
    with pytest.raises(OptionError, match="'class_names' parameter: the zeroshot head needs the class names"):
        ZeroShotHead(text_model=str(snapshots["clip"])).fit(X)


@pytest.mark.integration
def test_the_keras_layers_give_the_heads_probabilities(snapshots):
    from featx.backend import import_keras
    from featx.heads.registry import HEADS

    keras = import_keras()
    for family in ("clip", "siglip"):
        X, expected = _reference(snapshots[family], family)
        head = fit_head(_features(X, snapshots[family]), "zeroshot", templates=[TEMPLATE])
        inputs = keras.Input((X.shape[1],))
        outputs = inputs
        for layer in HEADS["zeroshot"].to_keras(head):
            outputs = layer(outputs)
        got = keras.Model(inputs, outputs).predict(X.astype(np.float32), verbose=0)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.integration
def test_an_exported_zeroshot_model_equals_featx_predict(tmp_path):
    """On any backbone whose vectors are as wide as the text tower's (here a tiny CNN and a CLIP
    text tower of 8): the exported model (backbone + unit normalisation + Dense) gives predict's
    probabilities, as fine-tuning's model starts from."""
    import keras

    import featx
    from featx.data.images import decode_rgb
    from featx.heads import predict_images
    from tests.imagegen import make_class_folder

    keras.utils.set_random_seed(3)
    inputs = keras.Input((32, 32, 3))
    outputs = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    keras.Model(inputs, outputs).save(tmp_path / "tiny.keras")
    data = make_class_folder(tmp_path / "data", classes=("cat", "dog"), per_class=4, splits=("train", "test"))
    features = featx.embed(data, str(tmp_path / "tiny.keras"), preprocess="tf", cache=tmp_path / "cache")
    head = fit_head(features, "zeroshot", text_model=str(make_clip(tmp_path / "clip8", projection_dim=8)),
                    templates=[TEMPLATE, "a picture of a {}"])
    path = featx.export(head, tmp_path / "zeroshot.keras")
    model = keras.saving.load_model(path, safe_mode=True)
    images = sorted(str(p) for p in (data / "test").rglob("*.png"))
    predicted = predict_images(head, images, cache_dir=tmp_path / "cache")
    for file, proba in zip(predicted.paths, predicted.proba):
        np.testing.assert_allclose(np.asarray(model(decode_rgb(file)[None].astype(np.float32)))[0], proba,
                                   atol=1e-4)
    tuned = featx.fine_tune(head, data=data, epochs=1, learning_rate=1e-12, unfreeze=0,
                            output=tmp_path / "tuned.keras")  # warm-started from the text prototypes (over a temperature)
    from featx.backbones.unfreeze import leaf_layers

    dense = next(layer for layer in leaf_layers(keras.saving.load_model(tuned.model_path))
                 if layer.name == "featx_zeroshot")
    kernel, prototypes = dense.get_weights()[0], head.estimator.coef_.T
    scale = float((kernel * prototypes).sum() / (prototypes * prototypes).sum())  # the warm start's 1/temperature
    assert scale > 0
    np.testing.assert_allclose(kernel, scale * prototypes, rtol=1e-4, atol=1e-6)
