"""Where caches live: the cache folder, one file per (dataset, backbone configuration), listing."""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

import h5py

from featx.cache.schema import ENCODING_TYPE
from featx.errors import CacheError

CACHE_DIR_ENV = "FEATX_CACHE_DIR"
DEFAULT_CACHE_DIR = ".featx"
CACHE_SUFFIX = ".h5"


def cache_folder(folder: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``folder`` when given, else ``$FEATX_CACHE_DIR``, else ``.featx`` here."""
    if folder is not None:
        return Path(folder)
    return Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "data"


def dataset_cache_path(cache_dir: str | os.PathLike, source: Path, backbone: str, fingerprint: str) -> Path:
    """The cache file of one dataset (by absolute path) under one backbone configuration."""
    key = hashlib.sha256(f"{source}|{fingerprint}".encode()).hexdigest()[:12]
    name = source.stem if source.is_file() else source.name
    return Path(cache_dir) / f"{_slug(name)}--{_slug(backbone)}--{key}{CACHE_SUFFIX}"


@dataclass(frozen=True)
class CacheSummary:
    """The attributes of one cache file, read without loading any vectors."""

    path: Path
    dataset: str
    backbone: str
    fingerprint: str
    images: int  # image files of the dataset at the last embed (skipped ones included)
    vectors: int  # distinct contents embedded
    skipped: int
    feature_dim: int
    updated: str
    config: dict
    layout: str = ""  # the dataset layout; "files" for the loose-file caches of embed_paths/predict

    def to_dict(self) -> dict:
        return {**self.__dict__, "path": str(self.path)}


def summarize(path: str | os.PathLike) -> CacheSummary:
    from featx.cache.schema import open_cache

    with open_cache(path) as h5:
        attrs = h5.attrs
        return CacheSummary(
            path=Path(path),
            dataset=str(attrs.get("dataset", "")),
            backbone=str(attrs.get("backbone", "")),
            fingerprint=str(attrs.get("fingerprint", "")),
            images=len(h5["images/path"]),
            vectors=len(h5["vectors/id"]),
            skipped=len(h5["skipped/path"]),
            feature_dim=int(attrs.get("feature_dim", 0)),
            updated=str(attrs.get("updated", "")),
            config=json.loads(attrs.get("config", "{}")),
            layout=str(attrs.get("layout", "")),
        )


def _is_featx_cache(path: Path) -> bool:
    try:
        with h5py.File(path, "r") as h5:
            return h5.attrs.get("encoding-type") == ENCODING_TYPE
    except OSError:
        return False


def find_caches(cache_dir: str | os.PathLike | None = None) -> list[CacheSummary]:
    """The featx caches in ``cache_dir``, most recently written first."""
    folder = cache_folder(cache_dir)
    if not folder.is_dir():
        return []
    files = [p for p in folder.glob(f"*{CACHE_SUFFIX}") if not p.name.startswith(".") and _is_featx_cache(p)]
    files.sort(key=lambda p: p.stat().st_mtime_ns, reverse=True)
    return [summarize(p) for p in files]


def latest_cache(cache_dir: str | os.PathLike | None = None, backbone: str | None = None) -> Path:
    """The most recently written cache, optionally of one backbone; a clear error when none fits."""
    folder = cache_folder(cache_dir)
    caches = [c for c in find_caches(folder) if c.layout != "files"]  # not predict's loose files
    if backbone is not None:
        matching = [c for c in caches if c.backbone.lower() == backbone.lower()]
        if not matching:
            have = ", ".join(sorted({c.backbone for c in caches})) or "none"
            raise CacheError(
                f"No cache of backbone {backbone!r} in {folder} (backbones cached: {have}). "
                f"Run 'featx embed --backbone {backbone} DATA' first."
            )
        caches = matching
    if not caches:
        raise CacheError(f"No feature cache in {folder}. Run 'featx embed DATA' first, or pass --cache.")
    return caches[0].path


def delete_cache(path: str | os.PathLike) -> None:
    """Remove a cache file with its shards and lock; refuses while a run is writing it."""
    from featx.cache.lock import cache_lock, lock_path
    from featx.cache.shards import list_shards, remove_shards

    path = Path(path)
    if not path.exists() and not list_shards(path):
        raise CacheError(f"No feature cache at {path}; 'featx cache ls' lists them.")
    with cache_lock(path, wait=False):
        remove_shards(list_shards(path))
        path.unlink(missing_ok=True)
    lock_path(path).unlink(missing_ok=True)
