"""The text towers of CLIP and SigLIP, read from a Hugging Face snapshot folder: texts -> the
vectors of transformers' ``get_text_features``, and the learned logit scale (and SigLIP's bias).
:func:`load_text_tower` is the one door: it sends a keras-hub preset to :mod:`featx.backbones.hub_text`.

keras-hub has no converter for these snapshots, so the weight mapping is written here, from
transformers' parameter names (``text_model.encoder.layers.{i}.self_attn.q_proj.weight``, ...), and
the tower runs in NumPy: a text is embedded once per prompt (a zero-shot head, a text query),
never per image, so it needs no Keras model, no backend and no TensorFlow. CLIP: pre-norm
transformer with a causal mask, quick-GELU, pooled at the first end token, projected without
bias. SigLIP: the same without the mask, tanh-GELU, pooled at the last position, a biased head.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featx.backbones.text_tokenizer import TextTokenizer, read_tokenizer
from featx.errors import MissingDependencyError, OptionError

FAMILIES = {"clip": "clip", "siglip": "siglip"}  # config.json model_type -> text tower family


def _quick_gelu(x: np.ndarray) -> np.ndarray:
    return x / (1.0 + np.exp(-1.702 * x))


def _tanh_gelu(x: np.ndarray) -> np.ndarray:
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))


ACTIVATIONS = {"quick_gelu": _quick_gelu, "gelu_pytorch_tanh": _tanh_gelu, "gelu_new": _tanh_gelu, "gelu": _gelu}


@dataclass
class TextTower:
    """One snapshot's text encoder: :meth:`encode` gives ``get_text_features`` of each text."""

    family: str  # "clip" or "siglip"
    folder: Path
    weights: dict[str, np.ndarray]
    heads: int
    eps: float
    activation: str
    eos_id: int
    tokenizer: TextTokenizer
    logit_scale: float  # as stored: the logits are multiplied by exp(logit_scale)
    logit_bias: float | None  # SigLIP's; None for CLIP (softmax over the classes)

    @classmethod
    def from_folder(cls, folder: str | Path) -> TextTower:
        """The text tower of a CLIP or SigLIP snapshot folder (``config.json``, safetensors, tokenizer files)."""
        folder = Path(folder)
        config = _config(folder)
        family = FAMILIES[config["model_type"]]
        text = config.get("text_config", {}) or {}
        weights = _text_weights(folder)
        positions = weights["embeddings.position_embedding.weight"].shape[0]
        bias = weights.pop("logit_bias", None)
        eos = int(text.get("eos_token_id", 2))
        return cls(family=family, folder=folder, weights=weights, heads=int(text.get("num_attention_heads", 8)),
                   eps=float(text.get("layer_norm_eps", 1e-5 if family == "clip" else 1e-6)),
                   activation=str(text.get("hidden_act", "quick_gelu" if family == "clip" else "gelu_pytorch_tanh")),
                   eos_id=eos, tokenizer=read_tokenizer(folder, family, positions),
                   logit_scale=float(np.asarray(weights.pop("logit_scale")).reshape(-1)[0]),
                   logit_bias=None if bias is None else float(np.asarray(bias).reshape(-1)[0]))

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        return self.tokenizer(list(texts))

    def encode(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), projection width) float32: transformers' ``get_text_features``, not normalised."""
        ids = self.tokenize(texts)
        out = []
        for start in range(0, len(ids), batch_size):
            out.append(self._forward(ids[start : start + batch_size]))
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.width), np.float32)

    @property
    def width(self) -> int:
        return int(self.weights["projection.weight"].shape[0])

    def _forward(self, batch: list[list[int]]) -> np.ndarray:
        w = self.weights
        length = max(len(ids) for ids in batch)
        ids = np.full((len(batch), length), self.tokenizer.pad_id, np.int64)
        for row, seq in enumerate(batch):
            ids[row, : len(seq)] = seq
        x = w["embeddings.token_embedding.weight"][ids] + w["embeddings.position_embedding.weight"][:length]
        mask = None
        if self.family == "clip":  # causal: a position sees itself and those before (padding comes after the end)
            mask = np.triu(np.full((length, length), -np.inf, np.float32), k=1)
        layer = 0
        while f"encoder.layers.{layer}.layer_norm1.weight" in w:
            x = self._layer(x, f"encoder.layers.{layer}.", mask)
            layer += 1
        x = _layer_norm(x, w["final_layer_norm.weight"], w["final_layer_norm.bias"], self.eps)
        if self.family == "clip":
            if self.eos_id == 2:  # configs from before transformers#24773: the end token is the highest id
                at = ids.argmax(axis=1)
            else:
                at = (ids == self.eos_id).argmax(axis=1)
            pooled = x[np.arange(len(ids)), at]
        else:
            pooled = x[:, -1]
        bias = w.get("projection.bias")
        return pooled @ w["projection.weight"].T + (0 if bias is None else bias)

    def _layer(self, x: np.ndarray, p: str, mask: np.ndarray | None) -> np.ndarray:
        w = self.weights
        h = _layer_norm(x, w[p + "layer_norm1.weight"], w[p + "layer_norm1.bias"], self.eps)
        x = x + self._attention(h, p + "self_attn.", mask)
        h = _layer_norm(x, w[p + "layer_norm2.weight"], w[p + "layer_norm2.bias"], self.eps)
        h = ACTIVATIONS[self.activation](_linear(h, w, p + "mlp.fc1"))
        return x + _linear(h, w, p + "mlp.fc2")

    def _attention(self, x: np.ndarray, p: str, mask: np.ndarray | None) -> np.ndarray:
        n, t, d = x.shape
        size = d // self.heads

        def split(name: str) -> np.ndarray:
            return _linear(x, self.weights, p + name).reshape(n, t, self.heads, size).transpose(0, 2, 1, 3)

        q, k, v = split("q_proj"), split("k_proj"), split("v_proj")
        scores = (q @ k.transpose(0, 1, 3, 2)) * size**-0.5
        if mask is not None:
            scores = scores + mask
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        attended = (scores / scores.sum(axis=-1, keepdims=True)) @ v
        return _linear(attended.transpose(0, 2, 1, 3).reshape(n, t, d), self.weights, p + "out_proj")


def _linear(x: np.ndarray, w: dict, name: str) -> np.ndarray:
    return x @ w[name + ".weight"].T + w[name + ".bias"]


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def load_text_tower(folder: str | Path):
    """The text tower of a model folder, chosen by what the folder is: a keras-hub CLIP or SigLIP
    preset runs on keras-hub's own encoder (:mod:`featx.backbones.hub_text`), a Hugging Face
    snapshot on :class:`TextTower`. Either gives ``encode``, ``logit_scale`` and ``logit_bias``."""
    from featx.backbones.hub_text import PresetTextTower, preset_family

    if preset_family(folder) is not None:
        return PresetTextTower.from_folder(folder)
    return TextTower.from_folder(folder)


def has_text_tower(folder: str | Path | None) -> bool:
    """Whether ``folder`` is a CLIP or SigLIP snapshot or keras-hub preset (its config.json says so)."""
    from featx.backbones.hub_text import preset_family

    if not folder or not (Path(folder) / "config.json").is_file():
        return False
    if preset_family(folder) is not None:
        return True
    try:
        return _config(Path(folder)).get("model_type") in FAMILIES
    except OptionError:
        return False


def _config(folder: Path) -> dict:
    path = folder / "config.json"
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OptionError(f"{{param}}: {folder} is not a Hugging Face snapshot folder with a readable config.json "
                          f"({type(exc).__name__}); give the folder of a CLIP or SigLIP snapshot.",
                          param="text_model") from None
    if not isinstance(config, dict) or config.get("model_type") not in FAMILIES:
        kind = (config.get("model_type") or str(config.get("registered_name", "")).rpartition(">")[2] or None
                if isinstance(config, dict) else None)
        raise OptionError(f"{{param}}: {folder} holds a {kind!r} model, which has no text tower; give the folder of "
                          "a CLIP or SigLIP snapshot or keras-hub preset.", param="text_model")
    return config


# transformers' names (after "text_model.") -> ours; the projection is outside text_model in CLIP
_OUTSIDE = {"text_projection.weight": "projection.weight", "logit_scale": "logit_scale", "logit_bias": "logit_bias"}
_INSIDE = {"head.weight": "projection.weight", "head.bias": "projection.bias"}


def _text_weights(folder: Path) -> dict[str, np.ndarray]:
    """The text tower's float32 arrays from the snapshot's safetensors files, under our names."""
    try:
        from safetensors import safe_open
    except ImportError:
        raise MissingDependencyError('{param}: reading a snapshot needs safetensors: pip install "featx[hub]"',
                                     param="text_model") from None
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise OptionError(f"{{param}}: {folder} holds no .safetensors weights; download the snapshot's "
                          "model.safetensors.", param="text_model")
    weights: dict[str, np.ndarray] = {}
    for path in files:
        with safe_open(str(path), framework="numpy") as handle:
            for key in handle.keys():
                name = _OUTSIDE.get(key)
                if name is None and key.startswith("text_model."):
                    inner = key.removeprefix("text_model.")
                    name = _INSIDE.get(inner, inner)
                if name is not None:
                    weights[name] = np.asarray(handle.get_tensor(key), np.float32)
    missing = [k for k in ("embeddings.token_embedding.weight", "projection.weight", "logit_scale") if k not in weights]
    if missing:
        raise OptionError(f"{{param}}: {folder}'s weights lack the text tower's {missing[0]}; give a full CLIP or "
                          "SigLIP snapshot (not a vision-only one).", param="text_model")
    return weights
