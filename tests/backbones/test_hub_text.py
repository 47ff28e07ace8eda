"""keras-hub CLIP and SigLIP presets as text towers: on a cache embedded with such a preset folder,
``featx fit-head --head zeroshot`` gives the probabilities of keras-hub's own model (softmax or
sigmoid of ``vision_logits``) and ``featx search --text`` ranks by the cosine of keras-hub's own
text and image embeddings; token ids equal keras-hub's preprocessor's, text features its
``get_text_embeddings``, within 1e-4 relative, on TensorFlow here and on JAX in a subprocess
(which must not import TensorFlow).

Tiny random presets are made here with ``save_to_preset``: every weight perturbed (the logit
scale and SigLIP's bias too), a tokenizer on vocabulary files the test writes (CLIP: the byte-level
BPE vocabulary and merges of :mod:`tests.backbones.textmodels`; SigLIP: a SentencePiece model
trained on a few words), a preprocessor with a short sequence length, an image converter with a
non-default normalisation; the photos are of the model's own size (32 pixels).
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.backbones.textmodels import WORDS, clip_vocabulary
from tests.imagegen import write_image

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(any(importlib.util.find_spec(m) is None for m in ("keras_hub", "tokenizers", "sentencepiece")),
                       reason='pip install "featx[hub]"'),
]
TOLERANCE = 1e-4
SIZE = 32
LENGTH = 12  # CLIP's preprocessor's sequence length (its text encoder takes up to 16; SigLIP's takes exactly 16)
CLASSES = ("cat", "dog", "red_dress")
TEMPLATE = "a photo of a {}."
TEXTS = ["a photo of a cat", "A RED dress, with long-sleeves!", "  a   small\tbird ", "the dog",
         "a photo of the big red dress with long sleeves, a small fish and a bird"]  # the last one is truncated
SCALE, OFFSET = [1 / (255 * 0.3), 1 / (255 * 0.2), 1 / (255 * 0.25)], [-0.4 / 0.3, -0.5 / 0.2, -0.45 / 0.25]


def _perturbed(model, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for variable in model.weights:
        variable.assign(variable + rng.normal(0, 0.3, variable.shape).astype("float32"))


def _sentencepiece() -> bytes:
    import sentencepiece

    rng = np.random.default_rng(0)
    corpus = [" ".join(rng.choice(WORDS, 6)) for _ in range(300)]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model, vocab_size=40, hard_vocab_limit=False,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>",
        unk_piece="<unk>", minloglevel=2)
    return model.getvalue()


def make_preset(folder: Path, family: str) -> Path:
    """A tiny random keras-hub CLIPBackbone or SigLIPBackbone preset with its tokenizer and preprocessor."""
    import keras
    import keras_hub

    keras.utils.set_random_seed(7)
    vision_args = dict(patch_size=8, hidden_dim=16, num_layers=2, num_heads=2, intermediate_dim=32,
                       image_shape=(SIZE, SIZE, 3))
    text_args = dict(embedding_dim=16, hidden_dim=16, num_layers=2, num_heads=2, intermediate_dim=32,
                     max_sequence_length=16)
    models, layers = keras_hub.models, keras_hub.layers
    if family == "clip":
        vocab, merges = clip_vocabulary()
        tokenizer = models.CLIPTokenizer(vocabulary=vocab, merges=[f"{a} {b}" for a, b in merges])
        backbone = models.CLIPBackbone(models.CLIPVisionEncoder(**vision_args),
                                       models.CLIPTextEncoder(vocabulary_size=len(vocab), **text_args),
                                       projection_dim=12)
        converter = layers.CLIPImageConverter(image_size=(SIZE, SIZE), scale=SCALE, offset=OFFSET)
        preprocessor = models.CLIPPreprocessor(tokenizer, image_converter=converter, sequence_length=LENGTH)
    else:
        tokenizer = models.SigLIPTokenizer(proto=_sentencepiece())
        backbone = models.SigLIPBackbone(models.SigLIPVisionEncoder(**vision_args),
                                         models.SigLIPTextEncoder(vocabulary_size=tokenizer.vocabulary_size(),
                                                                  **text_args))
        converter = layers.SigLIPImageConverter(image_size=(SIZE, SIZE), scale=SCALE, offset=OFFSET)
        preprocessor = models.SigLIPPreprocessor(tokenizer, image_converter=converter, sequence_length=16)
    _perturbed(backbone, 3 if family == "clip" else 4)
    backbone.save_to_preset(str(folder))
    preprocessor.save_to_preset(str(folder))
    return folder


def reference(folder: Path, family: str, images: list[str]) -> dict[str, np.ndarray]:
    """keras-hub's own preprocessor and model: token ids, text and image embeddings, probabilities."""
    import keras
    import keras_hub

    backbone = keras_hub.models.Backbone.from_preset(str(folder))
    preprocessor = getattr(keras_hub.models, f"{'CLIP' if family == 'clip' else 'SigLIP'}Preprocessor")
    preprocessor = preprocessor.from_preset(str(folder))
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB"), np.float32) for p in images])
    prompts = [TEMPLATE.format(name.replace("_", " ")) for name in CLASSES]
    classes = preprocessor({"images": pixels, "prompts": prompts})
    texts = preprocessor({"images": pixels[: len(TEXTS)], "prompts": TEXTS})
    numpy = keras.ops.convert_to_numpy
    logits = numpy(backbone({"images": classes["images"], "token_ids": classes["token_ids"]})["vision_logits"])
    proba = 1 / (1 + np.exp(-logits)) if family == "siglip" else np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return {"ids": numpy(texts["token_ids"]), "text": numpy(backbone.get_text_embeddings(texts["token_ids"])),
            "image": numpy(backbone.get_vision_embeddings(classes["images"])), "proba": proba}


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    images = sorted(str(write_image(root / "images" / name / f"{name}{i}.png", size=(SIZE, SIZE), seed=10 * j + i))
                    for j, name in enumerate(CLASSES) for i in range(3))
    found = {}
    for family in ("clip", "siglip"):
        folder = make_preset(root / family, family)
        found[family] = (folder, reference(folder, family, images))
    return root, images, found


def _error(ours: np.ndarray, expected: np.ndarray) -> float:
    return float(np.abs(ours - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_token_ids_and_text_features_equal_keras_hubs(presets, family):
    from featx.backbones.hub_text import PresetTextTower
    from featx.backbones.text_tower import has_text_tower, load_text_tower

    _, _, found = presets
    folder, expected = found[family]
    assert has_text_tower(folder)
    tower = load_text_tower(folder)
    assert isinstance(tower, PresetTextTower) and tower.family == family
    assert tower.tokenize(TEXTS) == expected["ids"].tolist()
    assert _error(tower.encode(TEXTS, batch_size=2), expected["text"]) <= TOLERANCE
    assert (tower.logit_bias is None) == (family == "clip")


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_zeroshot_and_text_search_on_a_preset_cache_equal_keras_hub(presets, tmp_path, monkeypatch, family):
    """The command line end to end: embed with the preset folder, fit the zero-shot head, search by text."""
    from typer.testing import CliRunner

    import featx
    from featx.cli import app
    from featx.heads import load_head
    from featx.search.exact import unit

    root, images, found = presets
    folder, expected = found[family]
    monkeypatch.setenv("FEATX_CACHE_DIR", str(tmp_path / ".featx"))
    runner = CliRunner()
    done = runner.invoke(app, ["embed", str(root / "images"), "--backbone", str(folder), "--json"])
    assert done.exit_code == 0, done.output
    cache = next((tmp_path / ".featx").glob("*.h5"))
    features = featx.load_features(cache)
    order = np.argsort(features.paths)
    assert _error(features.X[order], expected["image"]) <= TOLERANCE  # the cache holds keras-hub's image embeddings
    done = runner.invoke(app, ["fit-head", "--head", "zeroshot", "-p", f"templates={TEMPLATE}", "--cache", str(cache),
                               "--test-size", "0.5", "-o", str(tmp_path / "zs")])
    assert done.exit_code == 0, done.output
    head = load_head(tmp_path / "zs")
    np.testing.assert_allclose(head.predict_proba(features.X[order]), expected["proba"], rtol=TOLERANCE, atol=1e-6)
    import keras

    model = keras.saving.load_model(featx.export(head, tmp_path / "model.keras"), compile=False)  # photo -> proba
    pixels = np.stack([np.asarray(Image.open(p).convert("RGB"), np.float32) for p in images[:3]])
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(pixels)), expected["proba"][:3], atol=1e-5)

    done = runner.invoke(app, ["search", "--cache", str(cache), "--text", TEXTS[1], "--top", "3", "--json"])
    assert done.exit_code == 0, done.output
    hits = json.loads(done.stdout)["matches"][0]["hits"]
    scores = unit(expected["image"]) @ unit(expected["text"][1:2])[0]
    best = np.argsort(-scores)[:3]
    assert [h["path"] for h in hits] == [images[i] for i in best]
    np.testing.assert_allclose([h["score"] for h in hits], scores[best], rtol=TOLERANCE, atol=1e-6)


_ENCODE_ELSEWHERE = """
import json, sys
import numpy as np
from featx.backbones.text_tower import load_text_tower
args = json.loads(sys.argv[1])
for family, folder in args["folders"].items():
    tower = load_text_tower(folder)
    np.save(f"{args['out']}/{family}.npy", tower.encode(args["texts"]))
    np.save(f"{args['out']}/{family}-ids.npy", np.asarray(tower.tokenize(args["texts"])))
import keras
print(keras.backend.backend(), "tensorflow" in sys.modules)
"""


def test_text_features_on_jax_without_tensorflow(presets, tmp_path):
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (pip install 'featx[jax]')")
    _, _, found = presets
    args = {"folders": {family: str(folder) for family, (folder, _) in found.items()}, "texts": TEXTS,
            "out": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", _ENCODE_ELSEWHERE, json.dumps(args)], capture_output=True, text=True,
                          env={**os.environ, "KERAS_BACKEND": "jax"}, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "jax False"  # keras-hub did not bring TensorFlow in
    for family, (_, expected) in found.items():
        assert np.load(tmp_path / f"{family}-ids.npy").tolist() == expected["ids"].tolist(), family
        assert _error(np.load(tmp_path / f"{family}.npy"), expected["text"]) <= TOLERANCE, family


def test_a_preset_without_its_tokenizer_or_text_tower_is_one_line(presets, tmp_path):
    import shutil

    import keras_hub

    from featx.backbones.text_tower import has_text_tower, load_text_tower
    from featx.errors import OptionError

    _, _, found = presets
    bare = tmp_path / "bare"
    shutil.copytree(found["clip"][0], bare, ignore=shutil.ignore_patterns("assets", "preprocessor.json"))
    with pytest.raises(OptionError, match=r"'text_model' parameter: .*bare has no assets/tokenizer/vocabulary.json"):
        load_text_tower(bare)
    other = tmp_path / "other"
    shutil.copytree(found["siglip"][0], other)
    declared = json.loads((other / "tokenizer.json").read_text())
    (other / "tokenizer.json").write_text(json.dumps({**declared, "registered_name": "keras_hub>SigLIP2Tokenizer"}))
    with pytest.raises(OptionError, match=r"other holds a keras-hub SigLIP2Tokenizer; featx reads the text towers "
                                          "of presets with a SigLIPTokenizer"):
        load_text_tower(other)
    vision = keras_hub.models.Backbone.from_preset(str(found["siglip"][0])).vision_encoder
    vision.save_to_preset(str(tmp_path / "vision"))
    assert not has_text_tower(tmp_path / "vision")
    with pytest.raises(OptionError, match="no text tower"):
        load_text_tower(tmp_path / "vision")
