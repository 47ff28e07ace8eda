"""Shards: small files of finished batches, each committed by an atomic rename.

An embed never writes into the committed cache. Each finished batch becomes a shard file in
``<cache>.shards/``, written under a temporary name and renamed into place, so a killed run leaves
only whole shards behind and the next run reuses them. Shards carry the cache's fingerprint and
nothing else of the run, so any number of writers (processes, machines) can add shards to one
folder and a later consolidation merges them.
"""

from __future__ import annotations

import io
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from featx._faults import crash_point
from featx.cache.schema import checksum_options, stamp, write_errors
from featx.cache.segments import usable_rows
from featx.cache.tables import ID_DTYPE, STR

SHARD_TYPE = "featx-feature-shard"


def usable_block(features, feature_dim: int) -> bool:
    """Whether a shard's vector dataset has the expected width and dtype (float32)."""
    return features.ndim == 2 and features.shape[1] == feature_dim and features.dtype == np.float32


def shard_dir(cache_path: str | os.PathLike) -> Path:
    cache_path = Path(cache_path)
    return cache_path.with_name(cache_path.name + ".shards")


def write_shard(
    cache_path: str | os.PathLike,
    fingerprint: str,
    ids: np.ndarray,
    features: np.ndarray,
    skipped_ids: np.ndarray | None = None,
    skipped_reasons: list[str] | None = None,
    backend: str = "",
) -> Path:
    """Commit one batch of vectors (and the ids that failed to decode, with reasons) as a shard;
    ``backend`` is the Keras backend that computed the vectors."""
    folder = shard_dir(cache_path)
    folder.mkdir(parents=True, exist_ok=True)
    name = uuid.uuid4().hex
    tmp = folder / f".{name}.tmp"
    final = folder / f"{name}.h5"
    skipped_ids = np.asarray([] if skipped_ids is None else skipped_ids, dtype=ID_DTYPE)
    image = io.BytesIO()  # built in memory, written as plain bytes (as the index): a full disk is one
    with write_errors(folder), h5py.File(image, "w") as h5:  # OSError, never HDF5 failing in its own write
        stamp(h5, SHARD_TYPE)
        h5.attrs["fingerprint"] = fingerprint
        h5.attrs["backend"] = backend
        checked = checksum_options(ID_DTYPE)  # per-chunk checksums: a damaged shard fails its read
        h5.create_dataset("id", data=np.asarray(ids, dtype=ID_DTYPE), **checked)
        h5.create_dataset("features", data=np.asarray(features, dtype=np.float32), **checked)
        h5.create_dataset("skipped_id", data=skipped_ids, **checked)
        h5.create_dataset("skipped_reason", data=np.asarray(skipped_reasons or [], dtype=object), dtype=STR)
    try:
        with write_errors(folder):
            tmp.write_bytes(image.getbuffer())
            crash_point("shard-writing")
            os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    return final


def list_shards(cache_path: str | os.PathLike) -> list[Path]:
    folder = shard_dir(cache_path)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix == ".h5" and not p.name.startswith("."))


def read_shards(
    cache_path: str | os.PathLike, fingerprint: str, *, features: bool = True, width: int | None = None
) -> Iterator[tuple[Path, np.ndarray, np.ndarray | None, np.ndarray, list[str]]]:
    """Yield (shard, ids, features, skipped ids, reasons) of each readable shard of ``fingerprint``.

    With ``features=False`` the vectors are checked but not returned (None): what resuming needs to
    know. A shard that cannot be read (a foreign or damaged file: its checksums fail) or whose
    vectors are not ``width`` wide float32 is ignored, and so are its non-finite or absurd rows:
    those images are embedded again.
    """
    for shard in list_shards(cache_path):
        try:
            with h5py.File(shard, "r") as h5:
                if not _matches(h5, fingerprint):
                    continue
                vectors = h5["features"]
                ids = h5["id"][()].astype(ID_DTYPE)
                if not usable_block(vectors, vectors.shape[1] if width is None else width) or len(vectors) != len(ids):
                    continue
                vectors = vectors[()]
                keep = usable_rows(vectors)
                record = (
                    shard,
                    ids[keep],
                    vectors[keep] if features else None,
                    h5["skipped_id"][()].astype(ID_DTYPE),
                    list(h5["skipped_reason"].asstr()[()]),
                )
        except (OSError, KeyError, IndexError):
            continue
        yield record


def shard_width(cache_path: str | os.PathLike, fingerprint: str) -> int:
    """The vector width the shards of ``fingerprint`` hold (0 when none do): a shard records the
    width of its backbone, which a rerun with nothing left to embed cannot ask the backbone for."""
    for _, _, vectors, _, _ in read_shards(cache_path, fingerprint):
        if vectors.shape[1]:
            return int(vectors.shape[1])
    return 0


def shard_backends(cache_path: str | os.PathLike, fingerprint: str) -> set[str]:
    """The Keras backends that wrote the shards of ``fingerprint`` (those that record one)."""
    backends = set()
    for shard in list_shards(cache_path):
        try:
            with h5py.File(shard, "r") as h5:
                if _matches(h5, fingerprint) and h5.attrs.get("backend"):
                    backends.add(str(h5.attrs["backend"]))
        except OSError:
            continue
    return backends


def _matches(h5: h5py.File, fingerprint: str) -> bool:
    return h5.attrs.get("encoding-type") == SHARD_TYPE and h5.attrs.get("fingerprint") == fingerprint


def remove_shards(shards: list[Path]) -> None:
    """Delete merged shards (and the folder once empty)."""
    for shard in shards:
        shard.unlink(missing_ok=True)
    if shards:
        try:
            shards[0].parent.rmdir()
        except OSError:
            pass
