"""Transformer backbones give the reference implementation's vectors, offline, on photos of their own sizes.

Tiny random checkpoints are made here: transformers' ``save_pretrained`` for DINOv2, DINOv2 with
registers, DINOv3 and a backbone-only ViT (the snapshot keras-hub's converter cannot key), and
keras-hub ``save_to_preset`` for SigLIP and CLIP. Every parameter is perturbed (LayerNorms included, so leaving out the
final LayerNorm fails), the snapshots declare non-default normalisations (so ignoring them fails),
and DINOv2's position embeddings are resized (config 35 pixels, run at 28). Each snapshot declares the
image pipeline of its family's processor (DINOv2: shortest edge 32, bicubic, centre crop 28; ViT: 28x28
bilinear), and the photos are of several sizes and aspect ratios, some smaller than the crop.
featx's vectors, through ``featx.embed`` and its cache, must equal transformers' (its
``AutoImageProcessor``, PIL backend, then tokens after the final LayerNorm, pooled as the DINOv2
linear probe pools them) within 1e-4 relative, on TensorFlow here and on JAX and PyTorch
in a subprocess each (one snapshot each, PyTorch under --run-slow, to keep the suite short).
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
from tests.imagegen import write_image

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(importlib.util.find_spec("keras_hub") is None, reason='pip install "featx[hub]"'),
    pytest.mark.skipif(importlib.util.find_spec("transformers") is None or importlib.util.find_spec("torch") is None,
                       reason="the reference vectors need transformers and torch (featx[test,torch])"),
]
SIZE = 28  # native input size of every snapshot below
TOLERANCE = 1e-4
POOLINGS = ("cls", "avg", "cls+avg")
PHOTOS = [(45, 30), (30, 45), (37, 37), (20, 14), (90, 25), (28, 28)]  # (width, height), one size per photo
NORMALISATION = {  # what each snapshot's preprocessor_config.json declares
    "dinov2": ([0.45, 0.5, 0.4], [0.2, 0.3, 0.25]),
    "dinov2_with_registers": None,  # undeclared: BitImageProcessor's default (CLIP's mean/std), as transformers
    "vit": ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]),
    "dinov3": ([0.5, 0.45, 0.4], [0.25, 0.2, 0.3]),
}
PROCESSORS = {  # each family's processor and pipeline; DINOv3's has no PIL backend: it crops only here
    "dinov2": {"image_processor_type": "BitImageProcessor", "size": {"shortest_edge": 32}, "resample": 3,
               "do_center_crop": True, "crop_size": {"height": SIZE, "width": SIZE}},
    "vit": {"image_processor_type": "ViTImageProcessor", "size": {"height": SIZE, "width": SIZE}, "resample": 2},
    "dinov3": {"image_processor_type": "DINOv3ViTImageProcessorFast", "do_resize": False, "do_center_crop": True,
               "crop_size": {"height": SIZE, "width": SIZE}},
}
PROCESSORS["dinov2_with_registers"] = PROCESSORS["dinov2"]


def make_transformers_snapshot(folder: Path, kind: str) -> Path:
    """A tiny random transformers checkpoint of ``kind`` with perturbed parameters, as save_pretrained writes it."""
    import torch
    import transformers

    torch.manual_seed(sum(map(ord, kind)))
    common = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, patch_size=7)
    if kind == "vit":
        model = transformers.ViTModel(transformers.ViTConfig(**common, intermediate_size=64, image_size=SIZE))
    elif kind == "dinov3":  # rotary positions, registers
        model = transformers.DINOv3ViTModel(transformers.DINOv3ViTConfig(
            **common, intermediate_size=64, image_size=SIZE, num_register_tokens=2))
    else:
        registers = {"num_register_tokens": 3} if kind == "dinov2_with_registers" else {}
        config_class = getattr(transformers, "Dinov2WithRegistersConfig" if registers else "Dinov2Config")
        model_class = getattr(transformers, "Dinov2WithRegistersModel" if registers else "Dinov2Model")
        model = model_class(config_class(**common, mlp_ratio=2, image_size=35, **registers))
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.3)
    model.save_pretrained(folder)
    processor = dict(PROCESSORS[kind])
    if NORMALISATION[kind]:
        processor.update(image_mean=NORMALISATION[kind][0], image_std=NORMALISATION[kind][1])
    (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


def reference_vectors(folder: Path, kind: str, images: list[Path]) -> dict[str, np.ndarray]:
    """transformers' vectors: last_hidden_state (after the final LayerNorm), pooled per DINOv2's linear probe."""
    import torch
    import transformers

    pixels = reference_pixels(folder, kind, images)
    model = transformers.AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        tokens = model(pixel_values=torch.from_numpy(pixels)).last_hidden_state.numpy()
    prefix = 1 + getattr(model.config, "num_register_tokens", 0)
    cls, avg = tokens[:, 0], tokens[:, prefix:].mean(axis=1)
    return {"cls": cls, "avg": avg, "cls+avg": np.concatenate([cls, avg], axis=1)}


def reference_pixels(folder: Path, kind: str, images: list[Path]) -> np.ndarray:
    """What transformers feeds the model: its AutoImageProcessor (PIL backend); for DINOv3, whose
    processor needs torchvision, transformers' own centre crop, rescale and normalisation."""
    import transformers
    from transformers.image_transforms import center_crop

    if kind != "dinov3":
        processor = transformers.AutoImageProcessor.from_pretrained(folder, backend="pil")
        return np.stack([processor(images=Image.open(p), return_tensors="np")["pixel_values"][0] for p in images])
    mean, std = NORMALISATION[kind]
    pixels = np.stack([center_crop(np.asarray(Image.open(p).convert("RGB")), (SIZE, SIZE)) for p in images]) / 255.0
    return ((pixels - np.asarray(mean)) / np.asarray(std)).astype(np.float32).transpose(0, 3, 1, 2)


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    """Snapshot folders, the photos (of their own sizes: each snapshot's pipeline resizes and crops them), references."""
    root = tmp_path_factory.mktemp("hub")
    images = [write_image(root / "images" / cls / f"{cls}{i}.png", size=PHOTOS[3 * j + i], seed=10 * j + i)
              for j, cls in enumerate(["cat", "dog"]) for i in range(3)]
    images = sorted(str(p) for p in images)
    found = {}
    for kind in NORMALISATION:
        folder = make_transformers_snapshot(root / kind, kind)
        found[kind] = (folder, reference_vectors(folder, kind, images))
    return root, images, found


def _error(ours: np.ndarray, reference: np.ndarray) -> float:
    return float((np.abs(ours - reference) / np.abs(reference).max(axis=1, keepdims=True)).max())


def test_vectors_equal_transformers_for_every_pooling_on_tensorflow(snapshots, tmp_path):
    root, images, found = snapshots
    for kind, (folder, reference) in found.items():
        # cls+avg holds both others side by side; each alone is checked on one snapshot (they cost a build each)
        for pooling in POOLINGS if kind == "dinov2_with_registers" else ["cls+avg"]:
            features = featx.embed(root / "images", str(folder), pooling=pooling, cache=tmp_path / "cache")
            assert sorted(features.paths) == images
            ours = features.X[np.argsort(features.paths)]
            assert features.config["pooling"] == pooling and ours.shape == reference[pooling].shape
            assert features.config["resize"].startswith("pil:")  # the snapshot's pipeline, in the fingerprint
            assert _error(ours, reference[pooling]) <= TOLERANCE, f"{kind} {pooling}: {_error(ours, reference[pooling]):.2e}"
    assert "backbone-only" in _vit_keys(found["vit"][0])  # the trap was really there


def test_an_explicit_resize_overrides_the_snapshots_pipeline_as_another_cache(snapshots, tmp_path):
    root, images, found = snapshots
    folder, reference = found["vit"]
    own = featx.embed(root / "images", str(folder), cache=tmp_path / "cache")
    stretched = featx.embed(root / "images", str(folder), resize="stretch", cache=tmp_path / "cache")
    assert (own.config["resize"], stretched.config["resize"]) == ("pil:bilinear:28x28", "stretch")
    assert own.fingerprint != stretched.fingerprint and own.cache_path != stretched.cache_path
    # what featx gave before: Keras' bilinear without antialiasing is not the snapshot's pixels
    assert _error(stretched.X[np.argsort(stretched.paths)], reference["cls"]) > 100 * TOLERANCE
    from typer.testing import CliRunner

    from featx.cli import app

    shown = CliRunner().invoke(app, ["cache", "info", str(own.cache_path)])
    assert "resize=pil:bilinear:28x28" in shown.output and "pixels    Pillow bilinear: 28x28 (the snapshot's" in shown.output


def _vit_keys(folder: Path) -> str:
    from safetensors import safe_open

    with safe_open(str(folder / "model.safetensors"), "np") as weights:
        return "backbone-only" if not any(k.startswith("vit.") for k in weights.keys()) else "classifier"


_EMBED_ELSEWHERE = """
import json, sys
import numpy as np
import featx
args = json.loads(sys.argv[1])
for kind, folder in args["folders"].items():
    for pooling in args["poolings"]:
        features = featx.embed(args["data"], folder, pooling=pooling, backend=args["backend"], cache=args["cache"])
        np.save(f"{args['out']}/{kind}-{pooling}.npy", features.X[np.argsort(features.paths)])
print("tensorflow" in sys.modules)
"""


# PyTorch starts slowly (~25 s on the CI machine): with the giant backbones, under --run-slow.
@pytest.mark.parametrize("backend", ["jax", pytest.param("torch", marks=pytest.mark.slow)])
def test_vectors_equal_transformers_on_jax_and_pytorch(snapshots, tmp_path, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install 'featx[{backend}]')")
    root, images, found = snapshots
    args = {"backend": backend, "data": str(root / "images"), "cache": str(tmp_path / "cache"), "out": str(tmp_path),
            # one snapshot each, to keep the suite short (the others differ in what numpy does before Keras):
            # the PyTorch-style position resize on JAX, registers on PyTorch
            "folders": {kind: str(folder) for kind, (folder, _) in found.items()
                        if kind == ("dinov2" if backend == "jax" else "dinov2_with_registers")},
            "poolings": ["cls+avg"]}  # both poolings side by side (each alone: the TensorFlow test)
    done = subprocess.run([sys.executable, "-c", _EMBED_ELSEWHERE, json.dumps(args)], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": backend}, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "False"  # keras-hub did not bring TensorFlow in
    for kind in args["folders"]:
        reference = found[kind][1]
        for pooling in args["poolings"]:
            ours = np.load(tmp_path / f"{kind}-{pooling}.npy")
            assert _error(ours, reference[pooling]) <= TOLERANCE, f"{kind} {pooling} on {backend}"


def test_a_siglip_keras_hub_preset_pools_as_keras_hub_computes(tmp_path):
    """A keras-hub preset folder: its image converter's normalisation, its own pooled embedding, and
    the mean of its tokens after the final LayerNorm."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(3)
    encoder = keras_hub.models.SigLIPVisionEncoder(patch_size=7, hidden_dim=16, num_layers=2, num_heads=2,
                                                   intermediate_dim=32, image_shape=(SIZE, SIZE, 3))
    for variable in encoder.weights:  # LayerNorms too: a missing final one would show
        variable.assign(variable + np.random.default_rng(0).normal(0, 0.3, variable.shape).astype("float32"))
    folder = tmp_path / "siglip"
    encoder.save_to_preset(str(folder))
    scale, offset = [1 / (255 * 0.3), 1 / (255 * 0.2), 1 / (255 * 0.4)], [-0.4 / 0.3, -0.5 / 0.2, -0.6 / 0.4]
    (folder / "image_converter.json").write_text(json.dumps({"config": {"image_size": [SIZE, SIZE], "scale": scale,
                                                                        "offset": offset}}))
    images = [write_image(tmp_path / "images" / f"{i}.png", size=(SIZE, SIZE), seed=i) for i in range(3)]
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB"), np.float32) for p in images])
    normalised = pixels * np.asarray(scale, np.float32) + np.asarray(offset, np.float32)
    tokens = keras.Model(encoder.inputs, [encoder.post_layer_norm.output, encoder.output])(normalised)
    reference = {"avg": keras.ops.convert_to_numpy(tokens[0]).mean(axis=1), "pooled": keras.ops.convert_to_numpy(tokens[1])}
    for pooling in ("pooled", "avg"):
        features = featx.embed(tmp_path / "images", str(folder), pooling=pooling, cache=tmp_path / "cache")
        assert features.config["preprocessing"] == "meanstd:0.4,0.5,0.6:0.3,0.2,0.4"
        assert _error(features.X[np.argsort(features.paths)], reference[pooling]) <= TOLERANCE, pooling
    assert featx.embed(tmp_path / "images", str(folder), cache=tmp_path / "cache").config["pooling"] == "pooled"


def test_a_clip_keras_hub_preset_gives_its_projected_embedding_and_tokens(tmp_path):
    import keras
    import keras_hub

    keras.utils.set_random_seed(5)
    vision = keras_hub.models.CLIPVisionEncoder(patch_size=7, hidden_dim=16, num_layers=2, num_heads=2,
                                                intermediate_dim=32, image_shape=(SIZE, SIZE, 3))
    text = keras_hub.models.CLIPTextEncoder(vocabulary_size=50, embedding_dim=16, hidden_dim=16, num_layers=1,
                                            num_heads=2, intermediate_dim=32, max_sequence_length=8)
    clip = keras_hub.models.CLIPBackbone(vision, text, projection_dim=12)
    clip.save_to_preset(str(tmp_path / "clip"))  # no image converter saved: CLIP's own mean/std
    images = [write_image(tmp_path / "images" / f"{i}.png", size=(SIZE, SIZE), seed=i) for i in range(2)]
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB"), np.float32) for p in sorted(map(str, images))])
    mean, std = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
    normalised = ((pixels / 255 - np.asarray(mean)) / np.asarray(std)).astype(np.float32)
    tokens = keras.ops.convert_to_numpy(vision({"images": normalised}))
    reference = {"pooled": keras.ops.convert_to_numpy(clip.get_vision_embeddings(normalised)),
                 "cls+avg": np.concatenate([tokens[:, 0], tokens[:, 1:].mean(axis=1)], axis=1)}
    for pooling, expected in reference.items():
        features = featx.embed(tmp_path / "images", str(tmp_path / "clip"), pooling=pooling, cache=tmp_path / "cache")
        assert _error(features.X[np.argsort(features.paths)], expected) <= TOLERANCE, pooling


def test_a_head_fits_predicts_and_exports_on_a_transformer_cache(snapshots, tmp_path):
    import keras

    root, images, found = snapshots
    folder = str(found["dinov2"][0])  # position embeddings resized as transformers does: must survive saving
    features = featx.embed(root / "images", folder, cache=tmp_path / "cache")
    assert features.config["pooling"] == "cls+avg" and features.X.shape == (6, 64)
    head = featx.fit_head(features, "logreg", test_size=0.5)
    predictions = featx.predict_images(head, images, cache_dir=tmp_path / "cache")
    assert set(predictions.labels) <= {"cat", "dog"}

    exported = featx.export(head, tmp_path / "model.keras")
    import keras_hub  # noqa: F401 - what a user of the file does: registers the keras-hub classes

    from featx.backbones import pillow_resize  # noqa: F401 - and the layer resizing as the snapshot's processor

    # predict embeds as embed did; the exported model takes each photo raw, at its own size, resizes and
    # crops it inside as Pillow and transformers do, and gives the same probabilities
    order = [list(features.paths).index(p) for p in predictions.paths]
    assert np.abs(head.predict_proba(features.X[order]) - predictions.proba).max() <= 1e-6
    model = keras.saving.load_model(exported, compile=False, safe_mode=True)
    for path, expected in zip(predictions.paths, predictions.proba):
        pixels = np.asarray(Image.open(path).convert("RGB"), np.float32)[None]
        assert np.abs(keras.ops.convert_to_numpy(model(pixels))[0] - expected).max() <= 1e-5, path


@pytest.mark.slow  # a training run (~20 s on the CI machine): under --run-slow
def test_fine_tune_trains_the_top_transformer_block_and_its_backbone_embeds_again(snapshots, tmp_path):
    root, images, found = snapshots
    folder = str(found["dinov2"][0])
    features = featx.embed(root / "images", folder, cache=tmp_path / "cache")
    head = featx.fit_head(features, "logreg", test_size=0.5)
    report = featx.fine_tune(head, data=root / "images", output=tmp_path / "tuned.keras", epochs=1, unfreeze=1,
                             batch_size=6, learning_rate=1e-3, augment="")
    assert report.unfrozen_layers == 1  # of the 2 transformer blocks; the final LayerNorm came with it
    tuned = featx.embed(root / "images", str(report.backbone_path), cache=tmp_path / "cache")
    assert tuned.config["resize"] == features.config["resize"] == "pil:bicubic:short=32:crop=28x28"  # tuned on those
    before, after = features.X[np.argsort(features.paths)], tuned.X[np.argsort(tuned.paths)]
    assert after.shape == (6, 64) and not np.allclose(after, before, atol=1e-4)  # the top block trained
