"""The tokenizers of CLIP and SigLIP text towers, read from a Hugging Face snapshot folder.

CLIP's is a byte-level BPE that the snapshot's ``tokenizer.json`` describes whole (normaliser,
pre-tokeniser, merges, the start and end tokens): the ``tokenizers`` package runs it. SigLIP's is
a SentencePiece model (``spiece.model``) with big_vision's text canonicalisation in front (lower
case, punctuation removed, spaces collapsed) and ``</s>`` after, padded to the length the model
was trained on: written out here as transformers' ``SiglipTokenizer`` does it, on the
``sentencepiece`` package. Token ids equal transformers' tokenizers' (tests pin it).
"""

from __future__ import annotations

import json
import re
import string
from dataclasses import dataclass
from pathlib import Path

from featx.errors import MissingDependencyError, OptionError

SPIECE_UNDERLINE = "\u2581"
_PUNCTUATION = str.maketrans("", "", string.punctuation)


@dataclass
class TextTokenizer:
    """Texts -> token ids (lists of int) for one text tower; ``pad_to`` pads every text to that
    length (SigLIP), else texts keep their own length; ``max_length`` truncates, keeping the end token."""

    kind: str  # "bpe" (tokenizers) or "sentencepiece"
    model: object
    max_length: int
    pad_id: int
    eos_id: int
    pad_to: int | None = None
    lower: bool = True
    unk_piece: str = "<unk>"

    def __call__(self, texts: list[str]) -> list[list[int]]:
        return [self.encode(text) for text in texts]

    def encode(self, text: str) -> list[int]:
        if self.kind == "bpe":
            return list(self.model.encode(text).ids)
        ids = self._sentencepiece(text)[: self.max_length - 1] + [self.eos_id]
        if self.pad_to is not None:
            ids += [self.pad_id] * (self.pad_to - len(ids))
        return ids

    def _sentencepiece(self, text: str) -> list[int]:
        """transformers' SiglipTokenizer: canonicalise, then encode behind the unknown token's text
        and drop its pieces (so that the first word gets no dummy prefix of its own)."""
        text = canonicalize(SPIECE_UNDERLINE + text.replace(SPIECE_UNDERLINE, " "), lower=self.lower)
        prefix = len(self.model.encode(self.unk_piece, out_type=str))
        pieces = self.model.encode(self.unk_piece + text, out_type=str)
        pieces = pieces[prefix:] if len(pieces) >= prefix else pieces
        return [self.model.piece_to_id(piece) for piece in pieces]


def canonicalize(text: str, lower: bool = True) -> str:
    """big_vision's text canonicalisation, as SigLIP was trained on it: lower case, punctuation
    removed, runs of white space made one space, stripped."""
    if lower:
        text = text.lower()
    return re.sub(r"\s+", " ", text.translate(_PUNCTUATION)).strip()


def read_tokenizer(folder: Path, family: str, max_positions: int) -> TextTokenizer:
    """The tokenizer of the text tower in ``folder`` (``family`` "clip" or "siglip")."""
    settings = _json(folder / "tokenizer_config.json")
    limit = min(int(settings.get("model_max_length", max_positions) or max_positions), max_positions)
    if family == "clip":
        return _clip(folder, limit)
    return _siglip(folder, settings, limit)


def _clip(folder: Path, limit: int) -> TextTokenizer:
    path = folder / "tokenizer.json"
    if not path.is_file():
        raise OptionError(f"{{param}}: {folder} has no tokenizer.json (CLIP's byte-level BPE); download the "
                          "snapshot with its tokenizer files.", param="text_model")
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise MissingDependencyError('{param}: a CLIP text tower needs tokenizers: pip install "featx[hub]"',
                                     param="text_model") from None
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(limit)
    vocab = tokenizer.get_vocab()
    eos = vocab.get("<|endoftext|>", max(vocab.values()))
    return TextTokenizer("bpe", tokenizer, limit, pad_id=eos, eos_id=eos)


def _siglip(folder: Path, settings: dict, limit: int) -> TextTokenizer:
    path = folder / "spiece.model"
    if not path.is_file():
        raise OptionError(f"{{param}}: {folder} has no spiece.model (SigLIP's SentencePiece model); download the "
                          "snapshot with its tokenizer files.", param="text_model")
    try:
        import sentencepiece
    except ImportError:
        raise MissingDependencyError('{param}: a SigLIP text tower needs sentencepiece: pip install "featx[hub]"',
                                     param="text_model") from None
    model = sentencepiece.SentencePieceProcessor()
    model.Load(str(path))
    eos = model.piece_to_id(_token(settings.get("eos_token"), "</s>"))
    pad = model.piece_to_id(_token(settings.get("pad_token"), "</s>"))
    return TextTokenizer("sentencepiece", model, limit, pad_id=pad, eos_id=eos, pad_to=limit,
                         lower=bool(settings.get("do_lower_case", True)),
                         unk_piece=_token(settings.get("unk_token"), "<unk>"))


def _token(value, default: str) -> str:
    """A special token as tokenizer_config.json writes it: text, or an AddedToken's dict."""
    if isinstance(value, dict):
        return str(value.get("content", default))
    return str(value) if value else default


def _json(path: Path) -> dict:
    if not path.is_file():
        return {}
    with open(path, encoding="utf-8") as handle:
        value = json.load(handle)
    return value if isinstance(value, dict) else {}


@dataclass
class PresetTokenizer:
    """The tokenizer of a keras-hub CLIP or SigLIP preset, read from its asset files as keras-hub's
    ``CLIPTokenizer`` and ``SigLIPTokenizer`` build it on their Python path: texts -> token ids,
    without the start and end tokens (the preprocessor adds them: :mod:`featx.backbones.hub_text`)."""

    model: object  # tokenizers.Tokenizer (CLIP) or sentencepiece.SentencePieceProcessor (SigLIP)
    start_id: int | None
    end_id: int
    pad_id: int

    def __call__(self, texts: list[str]) -> list[list[int]]:
        if hasattr(self.model, "encode_batch"):
            return [list(done.ids) for done in self.model.encode_batch(list(texts))]
        return [list(ids) for ids in self.model.encode(list(texts))]


_CLIP_SPLIT = r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""


def read_preset_tokenizer(folder: Path, family: str) -> PresetTokenizer:
    """The tokenizer of the keras-hub preset in ``folder`` from ``assets/tokenizer/``: CLIP's
    ``vocabulary.json`` and ``merges.txt`` (a byte-level BPE with ``</w>`` word ends, the
    normalisation and split of transformers' CLIP converter, which keras-hub copies), SigLIP's
    ``vocabulary.spm``. keras-hub 0.32's own CLIPTokenizer cannot load its assets without TensorFlow
    (it reads the vocabulary its TensorFlow path sets), hence this reader, used on every backend."""
    assets = folder / "assets" / "tokenizer"
    declared = _json(folder / "tokenizer.json")
    kind = str(declared.get("registered_name") or "").rpartition(">")[2]
    expected = "CLIPTokenizer" if family == "clip" else "SigLIPTokenizer"
    if kind and kind != expected:  # e.g. SigLIP 2's Gemma tokenizer: other special tokens, another packing
        raise OptionError(f"{{param}}: {folder} holds a keras-hub {kind}; featx reads the text towers of presets "
                          f"with a {expected}.", param="text_model")
    settings = declared.get("config", {})
    settings = settings if isinstance(settings, dict) else {}
    if family == "clip":
        return _preset_clip(assets, settings)
    path = assets / "vocabulary.spm"
    if not path.is_file():
        raise OptionError(f"{{param}}: {folder} has no {path.relative_to(folder)} (the SentencePiece model of its "
                          "tokenizer); save the preset with its tokenizer.", param="text_model")
    try:
        import sentencepiece
    except ImportError:
        raise MissingDependencyError('{param}: a SigLIP text tower needs sentencepiece: pip install "featx[hub]"',
                                     param="text_model") from None
    model = sentencepiece.SentencePieceProcessor(model_proto=path.read_bytes(), out_type=int)
    end = model.piece_to_id("</s>")
    if model.id_to_piece(end) != "</s>":
        raise OptionError(f"{{param}}: {path} has no </s> piece, SigLIP's end and padding token.", param="text_model")
    return PresetTokenizer(model, None, end, end)


def _preset_clip(assets: Path, settings: dict) -> PresetTokenizer:
    vocabulary, merges = assets / "vocabulary.json", assets / "merges.txt"
    for path in (vocabulary, merges):
        if not path.is_file():
            raise OptionError(f"{{param}}: {assets.parent.parent} has no assets/tokenizer/{path.name} (CLIP's "
                              "byte-level BPE); save the preset with its tokenizer.", param="text_model")
    try:
        import tokenizers
        from tokenizers import decoders, models, normalizers, pre_tokenizers
    except ImportError:
        raise MissingDependencyError('{param}: a CLIP text tower needs tokenizers: pip install "featx[hub]"',
                                     param="text_model") from None
    vocab = _json(vocabulary)
    pairs = [tuple(line.split(" ")) for line in merges.read_text(encoding="utf-8").splitlines()
             if line.strip() and "#version:" not in line]
    specials = ["<|startoftext|>", "<|endoftext|>"]
    missing = [token for token in specials if token not in vocab]
    if missing:
        raise OptionError(f"{{param}}: {vocabulary} lacks CLIP's {missing[0]} token.", param="text_model")
    model = tokenizers.Tokenizer(models.BPE(vocab=vocab, merges=pairs, continuing_subword_prefix="",
                                            end_of_word_suffix="</w>", fuse_unk=False, unk_token="<|endoftext|>"))
    model.add_special_tokens(specials)
    model.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(tokenizers.Regex(r"\s+"), " "),
                                             normalizers.Lowercase()])
    model.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(tokenizers.Regex(_CLIP_SPLIT), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=bool(settings.get("add_prefix_space", False)))])
    model.decoder = decoders.ByteLevel()
    start, end = vocab["<|startoftext|>"], vocab["<|endoftext|>"]
    return PresetTokenizer(model, start, end, end if settings.get("pad_with_end_token") else 0)
