"""The text towers of keras-hub CLIP and SigLIP presets: texts -> keras-hub's own text embeddings
(``CLIPBackbone.get_text_embeddings``, ``SigLIPBackbone.get_text_embeddings``) and the model's
learned logit scale (and SigLIP's bias).

A preset folder (``save_to_preset``, or a curated preset's download) holds the whole model, its
tokenizer (``tokenizer.json`` with its assets: CLIP's ``vocabulary.json`` and ``merges.txt``,
SigLIP's SentencePiece proto) and usually its preprocessor (``preprocessor.json``: sequence length,
start and end tokens). The model is keras-hub's own. Its preprocessors need TensorFlow for their
text normalisation (``tf.strings.lower``, SigLIP's canonicalisation), and keras-hub 0.32's
CLIPTokenizer cannot load its assets without it: so the tokenizer is read from the asset files
(:func:`featx.backbones.text_tokenizer.read_preset_tokenizer`, as keras-hub's Python path builds
it), and the normalisation and packing (start, end, padding to the sequence length) are done here
as the preprocessors do them; TensorFlow stays out on JAX and PyTorch. Tests pin the token ids to
keras-hub's preprocessor's.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featx.backbones.text_tokenizer import PresetTokenizer, canonicalize, read_preset_tokenizer
from featx.errors import FeatxError, OptionError

PRESET_FAMILIES = {"CLIPBackbone": "clip", "SigLIPBackbone": "siglip"}
"""keras-hub classes of a preset whose text tower featx runs -> family."""
# what each family's keras-hub preprocessor does when the preset saved none (CLIPPreprocessor, SigLIPPreprocessor)
_PACKING = {"clip": {"sequence_length": 77, "add_start_token": True, "add_end_token": True},
            "siglip": {"sequence_length": 64, "add_start_token": False, "add_end_token": True}}


def preset_family(folder: str | Path | None) -> str | None:
    """"clip" or "siglip" when ``folder`` is a keras-hub preset of a whole CLIP or SigLIP model (read
    without Keras, from its config.json), else None (a vision encoder alone has no text tower)."""
    path = Path(folder) / "config.json" if folder else None
    if path is None or not path.is_file():
        return None
    config = _json(path)
    return PRESET_FAMILIES.get(str(config.get("registered_name", "")).rpartition(">")[2])


@dataclass
class PresetTextTower:
    """One keras-hub preset's text tower: :meth:`encode` gives its ``get_text_embeddings`` of each text."""

    family: str  # "clip" or "siglip"
    folder: Path
    backbone: object  # the keras-hub CLIPBackbone / SigLIPBackbone
    tokenizer: PresetTokenizer  # from the preset's tokenizer assets
    sequence_length: int
    add_start_token: bool
    add_end_token: bool
    normalize: bool  # CLIP: lower case; SigLIP: big_vision's canonicalisation
    logit_scale: float  # as stored: the logits are multiplied by exp(logit_scale)
    logit_bias: float | None  # SigLIP's; None for CLIP (softmax over the classes)

    @classmethod
    def from_folder(cls, folder: str | Path) -> PresetTextTower:
        """The text tower of a keras-hub CLIP or SigLIP preset folder (config.json, weights, tokenizer)."""
        from featx.backend import import_keras, import_keras_hub, tensorflow_hidden

        folder = Path(folder)
        family = preset_family(folder)
        if family is None:
            raise OptionError(f"{{param}}: {folder} is not a keras-hub preset of a whole CLIP or SigLIP model "
                              f"({', '.join(PRESET_FAMILIES)}); give such a preset folder.", param="text_model")
        tokenizer = read_preset_tokenizer(folder, family)  # before loading the model: a missing file is quick
        keras = import_keras()
        keras_hub = import_keras_hub()
        try:
            with tensorflow_hidden():
                backbone = keras_hub.models.Backbone.from_preset(str(folder))
        except Exception as exc:  # keras-hub's loaders raise many kinds: one line each
            text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise FeatxError(f"{{param}}: keras-hub could not load {folder}: {text}", param="text_model") from exc
        head = backbone.siglip_head if family == "siglip" else backbone.clip_head
        packing = {**_PACKING[family], **_preprocessor(folder)}
        limit = int(backbone.text_encoder.max_sequence_length)
        bias = getattr(head, "logit_bias", None)
        return cls(family=family, folder=folder, backbone=backbone, tokenizer=tokenizer,
                   # SigLIP's text embedding has one position table of the trained length: always that long
                   sequence_length=limit if family == "siglip" else min(int(packing["sequence_length"]), limit),
                   add_start_token=bool(packing["add_start_token"]), add_end_token=bool(packing["add_end_token"]),
                   normalize=bool(packing.get("canonicalize_text" if family == "siglip" else "to_lower", True)),
                   logit_scale=float(keras.ops.convert_to_numpy(head.logit_scale)),
                   logit_bias=None if bias is None else float(keras.ops.convert_to_numpy(bias)))

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Each text's token ids as the preset's preprocessor packs them: start and end tokens, then
        padding to the sequence length (the content truncated to make room for them)."""
        texts = [self._normalized(text) for text in texts]
        tokenizer = self.tokenizer
        start = [tokenizer.start_id] if self.add_start_token and tokenizer.start_id is not None else []
        end = [tokenizer.end_id] if self.add_end_token else []
        room = self.sequence_length - len(start) - len(end)
        out = []
        for ids in tokenizer(texts) if texts else []:
            ids = start + [int(i) for i in ids][:room] + end
            out.append(ids + [tokenizer.pad_id] * (self.sequence_length - len(ids)))
        return out

    def _normalized(self, text: str) -> str:
        if not self.normalize:
            return text
        return canonicalize(text) if self.family == "siglip" else text.lower()

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), projection width) float32: keras-hub's ``get_text_embeddings``, not normalised."""
        from featx.backend import import_keras

        keras = import_keras()
        ids = np.asarray(self.tokenize(list(texts)), np.int32).reshape(-1, self.sequence_length)
        out = [keras.ops.convert_to_numpy(self.backbone.get_text_embeddings(ids[start : start + batch_size]))
               for start in range(0, len(ids), batch_size)]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.width), np.float32)

    @property
    def width(self) -> int:
        return int(self.backbone.get_text_embeddings(np.zeros((1, self.sequence_length), np.int32)).shape[-1])


def _preprocessor(folder: Path) -> dict:
    """The packing settings of the preset's saved preprocessor (preprocessor.json), if any."""
    config = _json(folder / "preprocessor.json").get("config", {})
    keys = ("sequence_length", "add_start_token", "add_end_token", "to_lower", "canonicalize_text")
    return {k: config[k] for k in keys if isinstance(config, dict) and config.get(k) is not None}


def _json(path: Path) -> dict:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}
