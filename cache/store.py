"""The committed cache: its index file (every table, the list of segments) and reading vectors.

The index, ``<cache>.h5``, is small and only ever replaced whole (:func:`write_index`); the vectors
live in immutable segment files (``featx.cache.segments``) that it lists. Caches of schema v1 kept
their vectors in the index file itself: they are read as one segment, and the next embed moves
them into a segment (the upgrade).
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import h5py
import numpy as np

from featx._gc import gc_paused
from featx.cache.damage import damaged_cache, read_failure
from featx.cache.parts import part_problems
from featx.cache.readers import SegmentHold, hold_segments
from featx.cache.schema import open_cache, read
from featx.cache.segments import (
    CHUNK_ROWS,
    MAX_MAGNITUDE,
    iter_blocks,
    read_rows,
    segment_dir,
    usable_rows,
)
from featx.cache.tables import (
    ID_DTYPE,
    ImageTable,
    PartTable,
    RunTable,
    SegmentTable,
    SkipTable,
    column_names,
    rows_of,
)
from featx.cache.vectorids import HashedIds, repeated_ids, segment_ids
from featx.errors import CacheError

__all__ = ["CHUNK_ROWS", "MAX_MAGNITUDE", "CacheIndex", "Source", "index_problems", "read_vectors", "usable_rows",
           "vector_rows"]


@dataclass(frozen=True)
class Source:
    """Where rows ``start:stop`` of ``/vectors/id`` have their vectors: a dataset of one file."""

    file: Path
    dataset: str
    start: int
    stop: int
    segment: int  # row of the segment table; -1 for a v1 cache's own vectors
    ids_dataset: str = "id"

    def blocks(self, width: int | None = None):
        return iter_blocks(self.file, self.dataset, self.ids_dataset, width)


@dataclass
class CacheIndex:
    """Everything in a committed cache except the vectors themselves."""

    attrs: dict[str, object]
    classes: list[str]
    images: ImageTable | None  # None when read with images=False (a run reads it a block at a time)
    skipped: SkipTable
    vector_ids: np.ndarray | None  # S64, in segment order; None when read with hashed_ids (vector_hashes)
    segments: SegmentTable = field(default_factory=SegmentTable.empty)
    version: int = 2
    path: Path | None = None
    config: dict[str, object] = field(default_factory=dict)
    parts: PartTable = field(default_factory=PartTable.empty)  # v3: the image table's part files
    runs: RunTable = field(default_factory=RunTable.empty)  # v3: the image table in order, as part rows
    unreadable: dict[int, str] = field(default_factory=dict)  # segments whose ids could not be read (blank), why
    hold: SegmentHold | None = field(default=None, repr=False, compare=False)  # keeps the listed segments readable
    hashed: HashedIds | None = field(default=None, repr=False, compare=False)  # the vector ids as hashes (hashed_ids)
    # vector_rows' answer, once computed (not carried by dataclasses.replace, which may change the images)
    image_rows: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def fingerprint(self) -> str:
        return str(self.attrs.get("fingerprint", ""))

    @property
    def vector_count(self) -> int:
        """How many vectors the segments hold."""
        return len(self.vector_ids) if self.vector_ids is not None else len(self.hashed)

    @property
    def dtype(self) -> str:
        """How the vectors are stored: float32 or float16 (reads return float32)."""
        return str(self.attrs.get("dtype", "float32"))

    @classmethod
    @gc_paused()
    def read(cls, path: str | os.PathLike, *, check: bool = True, hold: bool = True,
             unreadable_ok: bool = False, packed_paths: bool = False, hashed_ids: bool = False,
             images: bool = True) -> CacheIndex:
        """The index of the cache at ``path``. Every reader opens a cache here, so each gets the same
        checks (:func:`index_problems`, no vector read) and the same one-line :class:`CacheError`
        for a damaged one; ``check=False`` leaves the listing of problems to the caller (verify).
        With ``hold`` (readers) the segments it lists stay readable while the index lives, whatever
        a compact or embed commits meanwhile (:mod:`featx.cache.readers`); a writer, which deletes
        segments under the cache's lock, reads with ``hold=False``. A segment that is missing or damaged
        is a one-line CacheError, unless ``unreadable_ok`` (a run, which embeds its images again).

        Two options save memory where millions of images are read: ``packed_paths`` holds the image
        table's paths as :class:`PackedStrings` (~26 bytes an image, not ~75), and ``hashed_ids`` (schema
        v3, every segment readable) 64-bit hashes of the vectors' ids instead of the ids (``vector_ids``
        is None; :func:`vector_rows` joins, :meth:`all_vector_ids` reads them). Without ``images`` the image
        table is not read (nor checked): :meth:`image_blocks` reads it a block at a time (a run)."""
        holding = hold_segments(path) if hold else None  # before the index: it then lists what is held
        try:
            with open_cache(path) as h5:
                missing = [name for name in index_datasets(h5) if name not in h5]
                if missing:
                    raise damaged_cache(path, f"/{missing[0]} is missing")
                attrs = {key: _plain(value) for key, value in h5.attrs.items()}
                version = int(attrs.get("encoding-version", 1))
                segments = SegmentTable.read(h5["segments"]) if version >= 2 else SegmentTable.empty()
                parts = PartTable.read(h5["parts"]) if version >= 3 else PartTable.empty()
                missing = part_problems(Path(path), parts)  # a missing part's rows would read as blanks
                if missing:
                    raise damaged_cache(path, missing[0])
                table = ImageTable.read(h5["images"], packed=("path",) if packed_paths else ()) if images else None
                vector_ids, unreadable = (segment_ids(Path(path), segments, hashed=hashed_ids) if version >= 3
                                          else (read(h5["vectors/id"]).astype(ID_DTYPE), {}))
                hashes = None
                if hashed_ids and version >= 3:
                    if unreadable:  # blank ids mark the rows of unreadable segments: the ids themselves
                        vector_ids = segment_ids(Path(path), segments)[0]
                    else:
                        vector_ids, hashes = None, vector_ids
                index = cls(
                    attrs=attrs,
                    classes=list(_strings(h5["classes"])),
                    images=table,
                    skipped=SkipTable.read(h5["skipped"]),
                    vector_ids=vector_ids,
                    segments=segments,
                    version=version,
                    path=Path(path),
                    config=config_attribute(attrs),
                    parts=parts,
                    runs=RunTable.read(h5["runs"]) if version >= 3 else RunTable.empty(),
                    unreadable=unreadable,
                    hold=holding,
                )
                if hashes is not None:  # sorted once: every join of this index searches them
                    index.hashed = HashedIds.of(hashes, index.sources(), functools.partial(_segment_ids, Path(path), segments))
                    del hashes
        except CacheError:
            _release(holding)
            raise
        except (KeyError, ValueError, TypeError, AttributeError, OSError, RuntimeError) as exc:  # a table missing,
            # retyped, or HDF5's own structures damaged (h5py raises RuntimeError for some of those)
            _release(holding)
            raise damaged_cache(path, read_failure(exc)) from None
        problems = index_problems(index) if check else []
        if problems:
            _release(holding)
            raise damaged_cache(path, problems[0])
        if unreadable and check and not unreadable_ok:
            _release(holding)
            raise CacheError(unreadable[min(unreadable)])
        return index

    def image_blocks(self, rows: int = 8192) -> Iterator[tuple[int, ImageTable]]:
        """The image table, ``rows`` at a time: (first row, its rows), without the whole table in memory."""
        if self.images is not None:
            yield 0, self.images
            return
        with open_cache(self.path) as h5:
            group = h5["images"]
            total = len(group["id"])
            for start in range(0, total, rows):
                block = np.s_[start : start + rows]
                yield start, ImageTable(**{name: read(group[name], block) for name in column_names(ImageTable)})

    @property
    def vector_hashes(self) -> np.ndarray | None:
        """The :func:`id_hashes` of the vectors' ids in row order, where the index holds only those (hashed_ids)."""
        return self.hashed.hashes if self.hashed is not None else None

    def all_vector_ids(self) -> np.ndarray:
        """``vector_ids``, read from the segments again where the index holds only their hashes."""
        return self.vector_ids if self.vector_ids is not None else _segment_ids(self.path, self.segments)

    def sources(self) -> list[Source]:
        """Where each row of ``vector_ids`` is stored, segment by segment."""
        if self.version < 2:
            return [Source(Path(str(self.path)), "vectors/features", 0, len(self.vector_ids), -1, "vectors/id")]
        folder, start, out = segment_dir(self.path), 0, []
        for i, (name, rows) in enumerate(zip(self.segments.name, self.segments.rows)):
            out.append(Source(folder / name, "features", start, start + int(rows), i))
            start += int(rows)
        return out


def _segment_ids(path: Path, segments: SegmentTable) -> np.ndarray:
    return segment_ids(path, segments)[0]


def _release(holding: SegmentHold | None) -> None:
    if holding is not None:
        holding.release()


def index_datasets(h5: h5py.File) -> list[str]:
    """Every dataset an index holds (the version's tables, their columns)."""
    tables = [("images", ImageTable), ("skipped", SkipTable)]
    if int(h5.attrs.get("encoding-version", 1)) >= 2:
        tables.append(("segments", SegmentTable))
    if int(h5.attrs.get("encoding-version", 1)) >= 3:
        tables += [("parts", PartTable), ("runs", RunTable)]
    return ["classes", "vectors/id"] + [f"{group}/{f}" for group, table in tables for f in column_names(table)]


def _strings(dataset: h5py.Dataset) -> np.ndarray:
    """A column of text (class names); anything else stored there is damage."""
    if dataset.dtype.kind not in "OSU":
        raise TypeError(f"{dataset.name} holds {dataset.dtype} values, not text")
    return read(dataset)


def config_attribute(attrs: dict[str, object]) -> dict[str, object]:
    """The backbone configuration; the JSON attributes beside it are checked here too."""
    for key, kind in (("sources", dict), ("backends", list)):
        if not isinstance(json.loads(str(attrs.get(key, "{}" if kind is dict else "[]"))), kind):
            raise TypeError(f"the {key} attribute is not a JSON {'object' if kind is dict else 'list'}")
    config = json.loads(str(attrs.get("config", "{}")))
    if not isinstance(config, dict):
        raise TypeError("the config attribute is not a JSON object")
    return config


def _plain(value):
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    return value


def read_vectors(index: CacheIndex, rows: np.ndarray, dtype: str = "float32") -> np.ndarray:
    """The feature rows at ``rows`` (indices into ``index.vector_ids``; any order, repeats allowed),
    read across the segments, as ``dtype``: in the segments' order, a block of rows (``_READ_BYTES``) at
    a time, so that memory holds the result and one block beside it."""
    width = int(index.attrs.get("feature_dim", 0))
    out = np.zeros((len(rows), width), dtype)
    rows = np.asarray(rows, np.int64)
    order = np.argsort(rows, kind="stable")
    ordered = rows[order]
    per_read = max(CHUNK_ROWS, _READ_BYTES // max(1, width * 4))
    for source in index.sources():
        first, last = np.searchsorted(ordered, [source.start, source.stop]).tolist()
        for start in range(first, last, per_read):
            stop = min(start + per_read, last)
            block = read_rows(source.file, source.dataset, ordered[start:stop] - source.start)
            if block.shape[1] != width:
                raise CacheError(f"{source.file} holds vectors {block.shape[1]} wide, the cache says {width}; "
                                 "re-run 'featx embed' to repair the cache.")
            out[order[start:stop]] = block
    return out


_READ_BYTES = 4 << 20  # vectors read at a time, as float32 (a larger block costs more than it saves)


_KINDS = {"label": "i", "size": "iu", "mtime_ns": "i", "rows": "iu", "id": "S", "part": "i", "start": "i", "length": "i"}  # others: strings


def index_problems(index: CacheIndex) -> list[str]:
    """What is inconsistent in an index, read without any vector: the columns and their types,
    labels and splits, ids, the fingerprint of the stored configuration, segment rows. The checks
    every reader makes on open (:meth:`CacheIndex.read`) and ``featx cache verify`` lists."""
    from featx.config import fingerprint_of
    from featx.data.records import SPLITS

    problems = []
    images, skipped = index.images if index.images is not None else ImageTable.empty(), index.skipped
    try:
        same = index.fingerprint == fingerprint_of(index.config)
    except (TypeError, ValueError):
        same = False
    if not same:
        problems.append("the fingerprint does not match the stored backbone configuration")
    width = index.attrs.get("feature_dim", 0)
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)) or width < 0:
        problems.append(f"the feature_dim attribute is {width!r}, not a number of floats")
    hashes = index.hashed.ordered if index.hashed is not None else None
    if repeated_ids(index.vector_ids, hashes, index.all_vector_ids, bool(index.unreadable)):
        problems.append("a content id appears twice in /vectors/id")
    tables = (("images", images), ("skipped", skipped), ("segments", index.segments), ("parts", index.parts),
              ("runs", index.runs))
    for name, table in tables:
        lengths = {f: len(getattr(table, f)) for f in column_names(table)}
        if len(set(lengths.values())) > 1:
            problems.append(f"/{name} columns have different lengths {lengths}")
        kinds = {f: getattr(table, f).dtype.kind for f in column_names(table)}
        wrong = [f for f, kind in kinds.items() if kind not in _KINDS.get(f, "OSU")]
        if wrong:
            problems.append(f"/{name}/{wrong[0]} holds values of the wrong type ({getattr(table, wrong[0]).dtype})")
    if problems:
        return problems
    if images.label.size and (images.label.min() < -1 or images.label.max() >= len(index.classes)):
        problems.append(f"/images/label holds values outside -1..{len(index.classes) - 1}")
    if set(images.split.tolist()) - {*SPLITS, ""}:
        problems.append(f"/images/split holds values other than {sorted({*SPLITS, ''})}")
    if index.version >= 2 and (index.segments.rows.size and index.segments.rows.min() < 0
                               or int(index.segments.rows.sum()) != index.vector_count):
        problems.append(f"the segments hold {int(index.segments.rows.sum())} rows, /vectors/id {index.vector_count}")
    if index.version >= 3 and not _runs_inside_parts(index):
        problems.append("/runs lists rows that no part of the image table holds")
    if index.unreadable or index.images is None:  # their images' vectors are unknown here: a writer embeds them again
        return problems
    skipped_paths = set(skipped.path.tolist())
    no_vector = np.flatnonzero(vector_rows(index) < 0)
    orphans = [images.path[r] for r in no_vector if images.path[r] not in skipped_paths]
    if orphans:
        problems.append(f"{len(orphans)} image rows have no vector and no skip reason (e.g. {orphans[0]})")
    return problems


def vector_rows(index: CacheIndex) -> np.ndarray:
    """The row of each image's vector in the segments (indices into ``vector_ids``), -1 where it has none;
    computed once per index (reading features and checking the index both ask)."""
    if index.image_rows is None:
        images = index.images
        index.image_rows = (rows_of(index.vector_ids, images.id) if index.vector_ids is not None
                            else index.hashed.rows(images.id))
    return index.image_rows


def _runs_inside_parts(index: CacheIndex) -> bool:
    runs, parts = index.runs, index.parts
    if len(runs) == 0:
        return True
    if runs.part.min() < 0 or runs.part.max() >= len(parts) or (runs.start < 0).any() or (runs.length < 1).any():
        return False
    return bool((runs.start + runs.length <= parts.rows[runs.part]).all())
