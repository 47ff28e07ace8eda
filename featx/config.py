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
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from featx.errors import CacheError, MissingFileError


@dataclass(frozen=True)
class EmbedConfig:
    """Everything that determines a feature vector, plus where the model comes from."""

    backbone: str  # registry name, "custom:<file name>:sha256:<hex>" or "hub:<name, handle or folder name>"
    # "imagenet", "none:seed=<n>[:backend=<b>]", "<file name>:sha256:<hex>", "embedded", or for a hub
    # backbone "sha256:<hex>" (its snapshot's weights and configs, see featx.backbones.hub.tree_sha256)
    weights: str
    input_size: int
    resize: str
    pooling: str
    preprocessing: str
    jpeg_draft: bool = False  # large JPEGs decoded at reduced scale (featx.data.images.decode_rgb)
    precision: str = "float32"  # the backbone's compute dtype (Keras dtype policy)
    # Where to load from; not part of the identity (the sha256 above is).
    model_path: str | None = field(default=None, compare=False)
    weights_path: str | None = field(default=None, compare=False)
    seed: int = field(default=0, compare=False)

    def identity(self) -> dict[str, object]:
        """The fields that change the numbers, as stored in caches and heads."""
        data = asdict(self)
        for key in ("model_path", "weights_path", "seed"):
            data.pop(key)
        for key, default in _NEW_AT_DEFAULT.items():  # so caches made before these existed still match
            if data[key] == default:
                data.pop(key)
        return data

    def sources(self) -> dict[str, object]:
        """Where the model and weights were loaded from: not identity, but needed to rebuild."""
        return {"model_path": self.model_path, "weights_path": self.weights_path, "seed": self.seed}

    @classmethod
    def from_record(cls, identity: dict, sources: dict | None = None, fingerprint: str | None = None) -> EmbedConfig:
        """Rebuild a configuration stored by a cache or head (``identity()`` + ``sources()``),
        checking it against the stored ``fingerprint`` when one is given."""
        try:
            config = cls(**identity, **(sources or {}))
        except TypeError as exc:
            raise CacheError(f"stored backbone configuration is damaged ({exc}).") from None
        if fingerprint is not None and config.fingerprint != fingerprint:
            raise CacheError("stored backbone configuration does not match its fingerprint; re-run 'featx embed'.")
        return config

    def source_file(self) -> str | None:
        """The model or weights file to load (None for a registry backbone without a file),
        checked to still hold the bytes whose sha256 this configuration records."""
        if self.model_path:
            return verified_file(self.model_path, self.backbone)
        if self.weights_path:
            return verified_file(self.weights_path, self.weights)
        return None

    @property
    def fingerprint(self) -> str:
        """A short stable hash of :meth:`identity`."""
        return fingerprint_of(self.identity())

    @property
    def is_custom(self) -> bool:
        return self.model_path is not None

    @property
    def is_hub(self) -> bool:
        """A keras-hub transformer (``hub:<name, handle or folder name>``), built by featx.backbones.hub_build."""
        return self.backbone.startswith("hub:")

    @property
    def display_name(self) -> str:
        """A short name for file names and messages."""
        if self.is_hub:

            return short_name(self.backbone.removeprefix("hub:"))
        return Path(self.model_path).stem if self.model_path else self.backbone


# Fields added after caches existed: left out of the identity at their default, which is what the
# caches made before them computed, so their fingerprints stay the same.
_NEW_AT_DEFAULT = {"jpeg_draft": False, "precision": "float32"}


def fingerprint_of(identity: dict[str, object]) -> str:
    canonical = json.dumps(identity, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def verified_file(path: str, recorded: str) -> str:
    """``path``, if its sha256 is the one at the end of ``recorded`` (``"...:sha256:<hex>"``).

    A configuration reloads its backbone file by path; a file replaced since would give other
    vectors under the old fingerprint, so it is refused.
    """
    expected = recorded.rpartition(":sha256:")[2] if ":sha256:" in recorded else ""
    if not expected:
        raise CacheError(f"the backbone configuration loads {path} but records no sha256 of it ({recorded!r}); "
                         "re-embed the images and refit the head.")
    try:
        found = sha256_once(path)
    except FileNotFoundError:
        raise MissingFileError(f"{path} is gone, and the backbone configuration was made with it (sha256 "
                               f"{expected[:16]}...); put it back, or re-embed the images and refit the head "
                               "with another file.") from None
    except OSError as exc:
        raise CacheError(f"{path} cannot be read to check it is the backbone file of this configuration "
                         f"({exc.strerror or exc}).") from None
    if found != expected:
        raise CacheError(f"{path} was changed since the backbone configuration was made with it (sha256 "
                         f"{expected[:16]}... expected, {found[:16]}... found); put the original file back, or "
                         "re-embed the images and refit the head with the new one.")
    return path


_digests: dict[tuple, str] = {}


def sha256_once(path: str | os.PathLike) -> str:
    """:func:`sha256_file`, computed once per process for a file that has not changed since (same
    size, modification and change times, inode), so checking a model file at every load is free."""
    stat = os.stat(path)
    key = (os.path.realpath(path), stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
    if key not in _digests:
        _digests[key] = sha256_file(path)
    return _digests[key]


def sha256_file(path: str | os.PathLike, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def short_name(label: str) -> str:
    """A file-name-safe short name of a hub label (``hf://facebook/dinov2-base`` → ``dinov2-base``)."""
    parts = [p for p in label.rstrip("/").split("/") if p]
    while len(parts) > 1 and parts[-1].isdigit():  # kaggle handles end in a version
        parts.pop()
    return re.sub(r"[^\w.-]+", "_", parts[-1] if parts else label)
