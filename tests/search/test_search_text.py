"""``featx search --text`` on a cache of CLIP image features: the snapshot's text tower embeds the
sentence, hits rank by cosine with it; a cache of a model without a text tower is refused in one line."""

from __future__ import annotations

import importlib.util
from dataclasses import replace

import numpy as np
import pytest

from featx.data.layouts import scan_dataset
from featx.engine.run import embed_into_cache
from featx.errors import OptionError
from featx.features.vectors import load_features
from featx.search import search
from featx.search.exact import unit
from tests.backbones.textmodels import make_clip
from tests.cache.test_integrity_cache import CONFIG, StandInBackbone
from tests.search.conftest import RUN

pytestmark = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in ("transformers", "torch", "tokenizers")),
    reason="the tiny CLIP snapshot is made with transformers and torch")


class Projected(StandInBackbone):
    """24 numbers per image, as wide as the tiny CLIP's image features."""

    feature_dim = 24

    def __call__(self, pixels):
        return super().__call__(pixels)[:, :24] - 0.5


def test_text_queries_rank_by_cosine_with_the_text_towers_vector(tmp_path, dataset):
    from featx.backbones.text_tower import TextTower

    folder = make_clip(tmp_path / "clip")
    cache = tmp_path / "featx" / "clip.h5"
    embed_into_cache(scan_dataset(dataset), replace(CONFIG, model_path=str(folder)), cache, RUN, extractor=Projected())
    result = search(cache, text=["a photo of a cat", "a red dress"], top=3)
    features = load_features(cache)
    texts = TextTower.from_folder(folder).encode(["a photo of a cat", "a red dress"])
    for match, vector in zip(result, texts):
        scores = unit(features.X) @ unit(vector[None])[0]
        assert [h.path for h in match.hits] == [str(p) for p in features.paths[np.argsort(-scores)[:3]]]
        assert match.hits[0].score == pytest.approx(float(scores.max()), abs=1e-6)  # float32 cosines
    assert [m.query for m in result] == ["a photo of a cat", "a red dress"]


def test_text_on_a_cache_without_a_text_tower_is_one_line(cache):
    with pytest.raises(OptionError, match=r"'text' parameter: .* has no text tower; search by text needs a cache "
                                          "of a CLIP or SigLIP snapshot folder"):
        search(cache, text="a cat")


def test_text_on_the_command_line(tmp_path, dataset):
    import json

    from typer.testing import CliRunner

    from featx.cli import app

    folder = make_clip(tmp_path / "clip")
    cache = tmp_path / "featx" / "clip.h5"
    embed_into_cache(scan_dataset(dataset), replace(CONFIG, model_path=str(folder)), cache, RUN, extractor=Projected())
    done = CliRunner().invoke(app, ["search", "--cache", str(cache), "--text", "a cat", "--text", "a dog", "--top",
                                    "2", "--json"])
    assert done.exit_code == 0, done.output
    matches = json.loads(done.stdout)["matches"]
    assert [m["query"] for m in matches] == ["a cat", "a dog"] and all(len(m["hits"]) == 2 for m in matches)
    assert matches == [m.to_dict() for m in search(cache, text=["a cat", "a dog"], top=2)]


def test_text_on_a_keras_hub_preset_cache_reads_its_tokenizer_first(tmp_path, dataset):
    """A cache of a keras-hub CLIPBackbone preset has a text tower; one saved without its tokenizer is
    refused in one line, before Keras loads anything (tests/backbones/test_hub_text.py runs real presets)."""
    import json

    preset = tmp_path / "preset"
    preset.mkdir()
    (preset / "config.json").write_text(json.dumps({"registered_name": "keras_hub>CLIPBackbone", "config": {}}))
    cache = tmp_path / "featx" / "preset.h5"
    embed_into_cache(scan_dataset(dataset), replace(CONFIG, model_path=str(preset)), cache, RUN, extractor=Projected())
    with pytest.raises(OptionError, match=r"'text_model' parameter: .*preset has no assets/tokenizer/vocabulary.json "
                                          r"\(CLIP's byte-level BPE\); save the preset with its tokenizer"):
        search(cache, text="a cat")
