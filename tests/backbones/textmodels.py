"""Tiny random CLIP and SigLIP snapshots, as transformers' ``save_pretrained`` writes them, with
tokenizer files made here: a tiny byte-level BPE vocabulary for CLIP (every byte, the merges of a
few words, the start and end tokens) and a tiny SentencePiece model for SigLIP. Every parameter is
perturbed (LayerNorms and biases included) so that leaving any out changes the vectors."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

WORDS = "a photo of the cat dog red dress with long sleeves bird fish small big picture".split()
MAX_POSITIONS = 16
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
            max_position_embeddings=MAX_POSITIONS)
VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32,
              patch_size=8)


def _byte_characters() -> list[str]:
    """GPT-2's byte-to-character table: the alphabet of a byte-level BPE."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    codes, extra = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return [chr(c) for c in codes]


def clip_vocabulary() -> tuple[dict[str, int], list[tuple[str, str]]]:
    chars = _byte_characters()
    vocab: dict[str, int] = {}
    for suffix in ("", "</w>"):
        for c in chars:
            vocab.setdefault(c + suffix, len(vocab))
    merges: list[tuple[str, str]] = []
    for word in sorted(set(WORDS)):
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            merges.append((parts[0], parts[1]))
            vocab.setdefault(parts[0] + parts[1], len(vocab))
            parts = [parts[0] + parts[1], *parts[2:]]
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return vocab, list(dict.fromkeys(merges))


def _perturb(model, seed: int) -> None:
    import torch

    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator) * 0.1
            parameter.add_(noise if "logit" not in name else noise * 5)


def make_clip(folder: Path, projection_dim: int = 24) -> Path:
    import transformers

    vocab, merges = clip_vocabulary()
    tokenizer = transformers.CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=MAX_POSITIONS)
    config = transformers.CLIPConfig(
        text_config=dict(**TEXT, vocab_size=len(vocab), bos_token_id=vocab["<|startoftext|>"],
                         eos_token_id=vocab["<|endoftext|>"], pad_token_id=vocab["<|endoftext|>"]),
        vision_config=VISION, projection_dim=projection_dim)
    model = transformers.CLIPModel(config)
    _perturb(model, 1)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def make_siglip(folder: Path) -> Path:
    import sentencepiece
    import transformers

    rng = np.random.default_rng(0)
    corpus = [" ".join(rng.choice(WORDS, 6)) for _ in range(300)]
    model_file = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus), model_writer=model_file, vocab_size=40, hard_vocab_limit=False,
        model_type="unigram", pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>",
        unk_piece="<unk>", minloglevel=2)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spiece.model").write_bytes(model_file.getvalue())
    tokenizer = transformers.SiglipTokenizer(vocab_file=str(folder / "spiece.model"), model_max_length=MAX_POSITIONS)
    config = transformers.SiglipConfig(
        text_config=dict(**TEXT, vocab_size=tokenizer.vocab_size, pad_token_id=1, eos_token_id=1),
        vision_config=VISION)
    model = transformers.SiglipModel(config)
    _perturb(model, 2)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder
