"""Checking a cache file: schema, structure, counts, checksums of every chunk, plausible vectors and,
optionally, file hashes."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from featx.cache.schema import VIEWS_KIND, has_checksums, open_cache
from featx.cache.segments import MAX_MAGNITUDE, check_blocks
from featx.cache.shards import list_shards
from featx.cache.store import CacheIndex, index_problems
from featx.config import sha256_file
from featx.errors import CacheError, DamagedCacheError


def verify_cache(path: str | os.PathLike, *, rehash: bool = False) -> tuple[list[str], list[str]]:
    """Return (problems, notes) for the cache at ``path``; no problems means it is sound."""
    notes = []
    try:
        index = CacheIndex.read(path, check=False)  # reads every table: HDF5 checks their checksums
        problems = index_problems(index) + list(index.unreadable.values())
        if not any(p.startswith("the segments hold") for p in problems):  # else rows cannot be told apart
            problems += _vectors(path, index, notes)
    except DamagedCacheError as exc:
        return [exc.problem], []
    except CacheError as exc:
        return [str(exc)], []
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        return [f"{path} is damaged: {exc}. Delete it and re-run 'featx embed'."], []
    if rehash and not problems:
        if index.attrs.get("kind") == VIEWS_KIND:  # its ids are view ids: the plain cache's rehash checks the files
            notes.append("a views cache: --rehash checks the image files through its plain cache")
        else:
            problems += _hashes(index)
    shards = list_shards(path)
    if shards:
        notes.append(f"{len(shards)} shard(s) of an interrupted run wait to be merged: rerun 'featx embed'.")
    return problems, notes


def _vectors(path: str | os.PathLike, index: CacheIndex, notes: list[str]) -> list[str]:
    """Problems of the vectors, every segment read whole (every chunk's checksum checked, its digest
    compared with the one the index recorded)."""
    problems = []
    expected = int(index.attrs.get("feature_dim", -1))
    if index.version < 2:
        notes.append(f"cache schema v{index.version}: the next 'featx embed' upgrades it to appended segments")
        with open_cache(path) as h5:
            if not has_checksums(h5["vectors/features"]):
                notes.append("no checksums: written by an older featx; re-embed to add them")
    bad = 0
    for source in index.sources():
        if source.segment in index.unreadable:  # its ids could not be read: listed already
            continue
        ids = index.vector_ids[source.start : source.stop]
        try:
            mask, digest = check_blocks(_same_ids(source.blocks(expected), ids, source.file))
        except CacheError as exc:
            problems.append(str(exc))
            continue
        bad += int((~mask).sum())
        if source.segment >= 0 and digest != index.segments.digest[source.segment]:
            problems.append(f"{source.file} does not hold the vectors committed (its digest differs)")
    if bad:
        problems.append(f"{bad} vectors contain NaN, infinite or absurd values (magnitude above {MAX_MAGNITUDE:g})")
    return problems


def _same_ids(blocks, ids, file):
    """Pass the blocks through, checking that they hold ``ids`` in order."""
    offset = 0
    for block_ids, features in blocks:
        if not np.array_equal(block_ids, ids[offset : offset + len(block_ids)]):
            raise CacheError(f"{file} holds other content ids than /vectors/id lists for it")
        offset += len(block_ids)
        yield block_ids, features
    if offset != len(ids):
        raise CacheError(f"{file} holds {offset} vectors, /vectors/id lists {len(ids)} for it")


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
