"""What makes two feature vectors comparable: the backbone configuration and its fingerprint.

A cache, a head and an exported model all carry the configuration that produced their features;
anything that changes the numbers (backbone, weights, input size, resize mode, pooling,
preprocessing) is part of the fingerprint, so vectors of different configurations never mix.
:class:`featx.options.EmbedOptions` resolves what a user asks for into an :class:`EmbedConfig`.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from featx.errors import CacheError


@dataclass(frozen=True)
class EmbedConfig:
    """Everything that determines a feature vector, plus where the model comes from."""

    backbone: str  # registry name, or "custom:<file name>:sha256:<hex>"
    weights: str  # "imagenet", "none:seed=<n>", "<file name>:sha256:<hex>" or "embedded"
    input_size: int
    resize: str
    pooling: str
    preprocessing: str
    # Where to load from; not part of the identity (the sha256 above is).
    model_path: str | None = field(default=None, compare=False)
    weights_path: str | None = field(default=None, compare=False)
    seed: int = field(default=0, compare=False)

    def identity(self) -> dict[str, object]:
        """The fields that change the numbers, as stored in caches and heads."""
        data = asdict(self)
        for key in ("model_path", "weights_path", "seed"):
            data.pop(key)
        return data

    def sources(self) -> dict[str, object]:
        """Where the model and weights were loaded from: not identity, but needed to rebuild."""
        return {"model_path": self.model_path, "weights_path": self.weights_path, "seed": self.seed}

    @classmethod
    def from_record(cls, identity: dict, sources: dict | None = None, fingerprint: str | None = None) -> "EmbedConfig":
        """Rebuild a configuration stored by a cache or head (``identity()`` + ``sources()``),
        checking it against the stored ``fingerprint`` when one is given."""
        try:
            config = cls(**identity, **(sources or {}))
        except TypeError as exc:
            raise CacheError(f"stored backbone configuration is damaged ({exc}).") from None
        if fingerprint is not None and config.fingerprint != fingerprint:
            raise CacheError("stored backbone configuration does not match its fingerprint; re-run 'featx embed'.")
        return config

    @property
    def fingerprint(self) -> str:
        """A short stable hash of :meth:`identity`."""
        return fingerprint_of(self.identity())

    @property
    def is_custom(self) -> bool:
        return self.model_path is not None

    @property
    def display_name(self) -> str:
        """A short name for file names and messages."""
        return Path(self.model_path).stem if self.model_path else self.backbone


def fingerprint_of(identity: dict[str, object]) -> str:
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()
