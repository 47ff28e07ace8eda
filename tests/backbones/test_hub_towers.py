"""CLIP and SigLIP Hugging Face snapshot folders as backbones: featx's image features are
transformers' ``get_image_features`` (within 1e-4 relative) through the snapshot's own image
pipeline, on TensorFlow and on JAX; on that cache, ``featx fit-head --head zeroshot`` gives
``logits_per_image``'s probabilities and ``featx search --text`` ranks by transformers' cosine.

Tiny random checkpoints from :mod:`tests.backbones.textmodels` (every parameter perturbed), each
with a ``preprocessor_config.json`` of non-default normalisation and size (CLIP: shortest edge 36
then a centre crop of 32; SigLIP: 32x32), and photos of several sizes and aspect ratios.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import featx
from featx.errors import OptionError
from tests.backbones.test_hub_fidelity import _EMBED_ELSEWHERE, _error
from tests.backbones.textmodels import MAX_POSITIONS, make_clip, make_siglip
from tests.imagegen import write_image

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("keras_hub") is None, reason='pip install "featx[hub]"'),
    pytest.mark.skipif(any(importlib.util.find_spec(m) is None
                           for m in ("transformers", "torch", "tokenizers", "sentencepiece")),
                       reason="the reference needs transformers, torch, tokenizers and sentencepiece"),
]
TOLERANCE = 1e-4
CLASSES = ("cat", "dog", "red_dress")
TEMPLATE = "a photo of a {}."
PHOTOS = [(45, 30), (30, 45), (37, 37), (20, 14), (90, 25), (32, 32)]  # (width, height)
PROCESSORS = {
    "clip": {"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 36},
             "crop_size": {"height": 32, "width": 32}, "image_mean": [0.4, 0.5, 0.45], "image_std": [0.3, 0.2, 0.25]},
    "siglip": {"image_processor_type": "SiglipImageProcessor", "size": {"height": 32, "width": 32},
               "image_mean": [0.45, 0.5, 0.4], "image_std": [0.2, 0.3, 0.25]},
}


def _model(folder: Path, family: str):
    import transformers

    return (transformers.CLIPModel if family == "clip" else transformers.SiglipModel).from_pretrained(folder).eval()


def reference(folder: Path, family: str, images: list[str]) -> dict[str, np.ndarray]:
    """transformers' image features, tokens, class-prompt features and probabilities of ``images``."""
    import torch
    import transformers

    processor = transformers.AutoImageProcessor.from_pretrained(folder, backend="pil")
    pixels = torch.from_numpy(np.stack([processor(images=Image.open(p), return_tensors="np")["pixel_values"][0]
                                        for p in images]))
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    texts = [TEMPLATE.format(name.replace("_", " ")) for name in CLASSES]
    inputs = tokenizer(texts, padding=True if family == "clip" else "max_length", truncation=True,
                       max_length=MAX_POSITIONS, return_tensors="pt")
    if family == "siglip":
        inputs.pop("attention_mask", None)  # as trained: see tests/backbones/test_text_tower.py
    model = _model(folder, family)
    with torch.no_grad():
        image = model.get_image_features(pixel_values=pixels)
        text = model.get_text_features(**inputs)
        vision = model.vision_model(pixel_values=pixels)
        logits = model(**inputs, pixel_values=pixels).logits_per_image
    proba = logits.softmax(dim=1) if family == "clip" else torch.sigmoid(logits)
    tokens = vision.last_hidden_state.numpy()
    return {"pooled": getattr(image, "pooler_output", image).numpy(), "text": getattr(text, "pooler_output", text).numpy(),
            "proba": proba.numpy(),
            # CLIP: the class token after post_layernorm; SigLIP: last_hidden_state is after post_layernorm
            "cls": vision.pooler_output.numpy() if family == "clip" else None,
            "avg": tokens.mean(axis=1) if family == "siglip" else None}


@pytest.fixture(scope="module")
def towers(tmp_path_factory):
    root = tmp_path_factory.mktemp("towers")
    images = sorted(str(write_image(root / "images" / name / f"{name}{i}.png", size=PHOTOS[(3 * j + i) % 6],
                                    seed=10 * j + i)) for j, name in enumerate(CLASSES) for i in range(4))
    found = {}
    for family, make in (("clip", make_clip), ("siglip", make_siglip)):
        folder = make(root / family)
        (folder / "preprocessor_config.json").write_text(json.dumps(PROCESSORS[family]))
        found[family] = (folder, reference(folder, family, images))
    return root, images, found


def _sorted(features) -> np.ndarray:
    return features.X[np.argsort(features.paths)]


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_image_features_equal_get_image_features_on_tensorflow(towers, tmp_path, family):
    root, images, found = towers
    folder, expected = found[family]
    features = featx.embed(root / "images", str(folder), cache=tmp_path / "cache")
    assert sorted(features.paths) == images
    assert features.config["pooling"] == "pooled" and features.config["resize"].startswith("pil:bicubic:")
    assert _error(_sorted(features), expected["pooled"]) <= TOLERANCE
    tokens = "cls" if family == "clip" else "avg"
    pooled_tokens = featx.embed(root / "images", str(folder), pooling=tokens, cache=tmp_path / "cache")
    assert _error(_sorted(pooled_tokens), expected[tokens]) <= TOLERANCE


def test_image_features_equal_get_image_features_on_jax(towers, tmp_path):
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (pip install 'featx[jax]')")
    root, images, found = towers
    args = {"backend": "jax", "data": str(root / "images"), "cache": str(tmp_path / "cache"), "out": str(tmp_path),
            "folders": {family: str(folder) for family, (folder, _) in found.items()}, "poolings": ["pooled"]}
    done = subprocess.run([sys.executable, "-c", _EMBED_ELSEWHERE, json.dumps(args)], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": "jax"}, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "False"  # no TensorFlow on JAX
    for family, (_, expected) in found.items():
        assert _error(np.load(tmp_path / f"{family}-pooled.npy"), expected["pooled"]) <= TOLERANCE, family


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_zeroshot_and_text_search_on_the_cache_equal_transformers(towers, tmp_path, monkeypatch, family):
    """The command line end to end: embed the folder, fit the zero-shot head from the cache, search by text."""
    from typer.testing import CliRunner

    from featx.cli import app
    from featx.heads import load_head
    from featx.search.exact import unit

    root, images, found = towers
    folder, expected = found[family]
    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path / ".featx"))
    runner = CliRunner()
    done = runner.invoke(app, ["embed", str(root / "images"), "--backbone", str(folder), "--json"])
    assert done.exit_code == 0, done.output
    cache = next((tmp_path / ".featx").glob("*.h5"))
    done = runner.invoke(app, ["fit-head", "--head", "zeroshot", "-p", f"templates={TEMPLATE}", "--cache", str(cache),
                               "--test-size", "0.5", "-o", str(tmp_path / "zs")])
    assert done.exit_code == 0, done.output
    head = load_head(tmp_path / "zs")
    features = featx.load_features(cache)
    order = np.argsort(features.paths)
    np.testing.assert_allclose(head.predict_proba(features.X[order]), expected["proba"], rtol=TOLERANCE, atol=1e-6)

    query = TEMPLATE.format("cat")
    done = runner.invoke(app, ["search", "--cache", str(cache), "--text", query, "--top", "3", "--json"])
    assert done.exit_code == 0, done.output
    hits = json.loads(done.stdout)["matches"][0]["hits"]
    scores = unit(expected["pooled"]) @ unit(expected["text"][:1])[0]
    best = np.argsort(-scores)[:3]
    assert [h["path"] for h in hits] == [images[i] for i in best]
    np.testing.assert_allclose([h["score"] for h in hits], scores[best], rtol=TOLERANCE, atol=1e-6)


def test_an_exported_zeroshot_model_takes_raw_photos_to_the_same_probabilities(towers, tmp_path):
    """The whole model (pipeline, CLIP's tower and projection, the zero-shot head) saved in one file."""
    import keras

    root, images, found = towers
    folder, expected = found["clip"]
    features = featx.embed(root / "images", str(folder), cache=tmp_path / "cache")
    head = featx.fit_head(features, "zeroshot", templates=[TEMPLATE], test_size=0.5)
    exported = featx.export(head, tmp_path / "model.keras")
    import keras_hub  # noqa: F401 - registers the keras-hub classes, as a user of the file does

    from featx.backbones import pillow_resize  # noqa: F401 - and the snapshot's resize layer

    model = keras.saving.load_model(exported, compile=False, safe_mode=True)
    ours = head.predict_proba(_sorted(features))
    np.testing.assert_allclose(ours, expected["proba"], rtol=TOLERANCE, atol=1e-6)
    for path, proba in list(zip(images, ours))[:4]:
        pixels = np.asarray(Image.open(path).convert("RGB"), np.float32)[None]
        # the in-graph resize gives Pillow's pixels within one 8-bit step (featx.backbones.pillow_resize): a few
        # 1e-5 of probability through this tiny model's steep logit scale
        np.testing.assert_allclose(keras.ops.convert_to_numpy(model(pixels))[0], proba, atol=3e-4)


def test_vision_only_snapshots_and_refusals(towers, tmp_path):
    """A vision-only CLIP (no projection: its tokens, not ``pooled``) and a snapshot declaring what
    keras-hub's encoders do not compute, each refused in one line."""
    import transformers

    root, images, found = towers
    model = transformers.CLIPVisionModel.from_pretrained(found["clip"][0]).eval()
    model.save_pretrained(tmp_path / "vision")
    (tmp_path / "vision" / "preprocessor_config.json").write_text(json.dumps(PROCESSORS["clip"]))
    with pytest.raises(OptionError, match="has no image projection"):
        featx.embed(root / "images", str(tmp_path / "vision"), cache=tmp_path / "cache")
    features = featx.embed(root / "images", str(tmp_path / "vision"), pooling="cls", cache=tmp_path / "cache")
    assert _error(_sorted(features), found["clip"][1]["cls"]) <= TOLERANCE
    config = json.loads((tmp_path / "vision" / "config.json").read_text())
    (tmp_path / "vision" / "config.json").write_text(json.dumps({**config, "layer_norm_eps": 1e-3}))
    with pytest.raises(OptionError, match=r"declares layer_norm_eps 0.001 \(keras-hub fixes 1e-05\)"):
        featx.embed(root / "images", str(tmp_path / "vision"), pooling="cls", cache=tmp_path / "cache")
