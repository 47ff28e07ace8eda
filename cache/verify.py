"""Checking a cache file: schema, structure, counts, checksums of every chunk, plausible vectors and,
optionally, file hashes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from featx.cache.schema import has_checksums, open_cache, read
from featx.cache.shards import list_shards
from featx.cache.store import CHUNK_ROWS, MAX_MAGNITUDE, CacheIndex, usable_rows
from featx.config import fingerprint_of, sha256_file
from featx.datasets import SPLITS
from featx.errors import CacheError

SPLIT_VALUES = {*SPLITS, ""}


def verify_cache(path: str | os.PathLike, *, rehash: bool = False) -> tuple[list[str], list[str]]:
    """Return (problems, notes) for the cache at ``path``; no problems means it is sound."""
    notes = []
    try:
        index = CacheIndex.read(path)  # reads every table: HDF5 checks their checksums
        problems = _structure(index) + _vectors(path, index, notes)
    except CacheError as exc:
        return [str(exc)], []
    except (OSError, KeyError, ValueError, TypeError) as exc:
        return [f"{path} is damaged: {exc}. Delete it and re-run 'featx embed'."], []
    if rehash and not problems:
        problems += _hashes(index)
    shards = list_shards(path)
    if shards:
        notes.append(f"{len(shards)} shard(s) of an interrupted run wait to be merged: rerun 'featx embed'.")
    return problems, notes


def _structure(index: CacheIndex) -> list[str]:
    problems = []
    images, skipped, ids = index.images, index.skipped, index.vector_ids
    if index.fingerprint != fingerprint_of(json.loads(str(index.attrs.get("config", "{}")))):
        problems.append("the fingerprint does not match the stored backbone configuration")
    if len(set(ids.tolist())) != len(ids):
        problems.append("a content id appears twice in /vectors/id")
    for name, table in (("images", images), ("skipped", skipped)):
        lengths = {f: len(getattr(table, f)) for f in table.__dataclass_fields__}
        if len(set(lengths.values())) > 1:
            problems.append(f"/{name} columns have different lengths {lengths}")
    if problems:
        return problems
    if images.label.size and (images.label.min() < -1 or images.label.max() >= len(index.classes)):
        problems.append(f"/images/label holds values outside -1..{len(index.classes) - 1}")
    if set(images.split.tolist()) - SPLIT_VALUES:
        problems.append(f"/images/split holds values other than {sorted(SPLIT_VALUES)}")
    known = set(ids.tolist())
    skipped_paths = set(skipped.path.tolist())
    orphans = [p for p, i in zip(images.path, images.id.tolist()) if i not in known and p not in skipped_paths]
    if orphans:
        problems.append(f"{len(orphans)} image rows have no vector and no skip reason (e.g. {orphans[0]})")
    return problems


def _vectors(path: str | os.PathLike, index: CacheIndex, notes: list[str]) -> list[str]:
    """Problems of /vectors/features, read whole (every chunk's checksum checked)."""
    problems = []
    with open_cache(path) as h5:
        features = h5["vectors/features"]
        if not has_checksums(features):
            notes.append("no checksums: written by an older featx; re-embed to add them")
        expected = int(index.attrs.get("feature_dim", -1))
        if features.ndim != 2 or features.shape[0] != len(index.vector_ids) or features.shape[1] != expected:
            return [f"/vectors/features has shape {features.shape}, expected ({len(index.vector_ids)}, {expected})"]
        if features.dtype != np.float32:
            problems.append(f"/vectors/features is {features.dtype}, expected float32")
        bad = 0
        block = CHUNK_ROWS * 16
        for start in range(0, features.shape[0], block):
            bad += int((~usable_rows(read(features, np.s_[start : start + block]))).sum())
        if bad:
            problems.append(f"{bad} vectors contain NaN, infinite or absurd values (magnitude above {MAX_MAGNITUDE:g})")
    return problems


def _hashes(index: CacheIndex) -> list[str]:
    root = Path(str(index.attrs.get("root", "")))
    problems = []
    for rel, content_id in zip(index.images.path, index.images.id.tolist()):
        file = root / rel
        try:
            if sha256_file(file).encode() != content_id:
                problems.append(f"{file} changed since it was embedded: rerun 'featx embed'")
        except OSError as exc:
            problems.append(f"{file} cannot be read ({exc.strerror or exc})")
    return problems
