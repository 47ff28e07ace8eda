"""The CLIP and SigLIP text towers read from snapshot folders give transformers' token ids and
``get_text_features`` (within 1e-4 relative), offline, on tiny random checkpoints made by the tests."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from featx.backbones.text_tower import TextTower, has_text_tower
from featx.errors import OptionError
from tests.backbones.textmodels import MAX_POSITIONS, make_clip, make_siglip

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("transformers", "torch", "tokenizers", "sentencepiece")),
    reason="the reference needs transformers, torch, tokenizers and sentencepiece (featx[test,torch,hub])")

TEXTS = ["a photo of a cat.", "A Red dress with LONG sleeves!", "zebra, unknown words?", "  a   big  dog ",
         "a photo of the small bird with a big fish and a red picture of a long dog"]  # the last one is truncated
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory):
    root = tmp_path_factory.mktemp("text-towers")
    return {"clip": make_clip(root / "clip"), "siglip": make_siglip(root / "siglip")}


def _reference(folder, family, texts):
    import torch
    import transformers

    model = (transformers.CLIPModel if family == "clip" else transformers.SiglipModel).from_pretrained(folder).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    padding = True if family == "clip" else "max_length"
    inputs = tokenizer(texts, padding=padding, truncation=True, max_length=MAX_POSITIONS, return_tensors="pt")
    ids = tokenizer(texts, truncation=True, max_length=MAX_POSITIONS, padding=False if family == "clip" else padding)
    if family == "siglip":  # as trained (big_vision, open_clip): no mask, the padding is attended to; transformers
        inputs.pop("attention_mask", None)  # 5's SiglipTokenizer also returns a mask, which would mask it out
    with torch.no_grad():
        features = model.get_text_features(**inputs)
    features = getattr(features, "pooler_output", features)
    return ids["input_ids"], features.numpy(), model


def _relative(a, b):
    return np.linalg.norm(a - b, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_token_ids_and_text_features_equal_transformers(snapshots, family):
    tower = TextTower.from_folder(snapshots[family])
    ids, expected, model = _reference(snapshots[family], family, TEXTS)
    assert tower.tokenize(TEXTS) == [list(i) for i in ids]
    assert len(ids[-1]) == MAX_POSITIONS
    features = tower.encode(TEXTS)
    assert features.shape == expected.shape
    assert _relative(features, expected).max() < TOLERANCE
    assert tower.logit_scale == pytest.approx(model.logit_scale.item(), rel=1e-6)
    if family == "siglip":
        assert tower.logit_bias == pytest.approx(model.logit_bias.item(), rel=1e-6)
    else:
        assert tower.logit_bias is None
    assert has_text_tower(snapshots[family])


def test_a_folder_without_a_text_tower_is_refused_in_one_line(tmp_path, snapshots):
    (tmp_path / "config.json").write_text('{"model_type": "dinov2"}')
    assert not has_text_tower(tmp_path)
    with pytest.raises(OptionError, match="holds a 'dinov2' model, which has no text tower"):
        TextTower.from_folder(tmp_path)
    with pytest.raises(OptionError, match="not a Hugging Face snapshot folder"):
        TextTower.from_folder(tmp_path / "nowhere")
    (tmp_path / "config.json").write_text((snapshots["siglip"] / "config.json").read_text())
    with pytest.raises(OptionError, match="holds no .safetensors weights"):
        TextTower.from_folder(tmp_path)
