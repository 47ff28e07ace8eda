"""Committing a run: the new vectors become one new segment, then the index is replaced.

Committed segments are never rewritten. :func:`plan_segments` decides, from a ``stat`` per segment,
which segments a rerun trusts; a segment whose stat changed is read whole and kept if its digest
still matches, else its usable rows are copied into the new segment and it is dropped (so are the
vectors of a v1 cache: the upgrade). :func:`commit` writes the new segment, then the index (the
commit point), then deletes the merged shards and dropped segments. :func:`compact` merges every
segment into one, keeping only the vectors an image refers to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np

from featx._faults import crash_point
from featx.cache.idset import IdSet
from featx.cache.indexfile import write_index
from featx.cache.parts import TableLayout, layout_table, unchanged_rows
from featx.cache.readers import remove_unread
from featx.cache.schema import ENCODING_TYPE, is_featx_file
from featx.cache.segments import Blocks, check_blocks, remove_files, segment_dir, stat_matches, write_segment_if_any
from featx.cache.shards import list_shards, read_shards, remove_shards, shard_dir
from featx.cache.store import CacheIndex, Source
from featx.cache.tables import ImageTable, SegmentTable, SkipTable
from featx.errors import CacheError, CacheWriteError


@dataclass
class SegmentPlan:
    """What a run does with each committed vector source: keep it, or copy its usable rows."""

    keep: list[int] = field(default_factory=list)  # segment rows kept as they are
    restat: dict[int, tuple[int, int]] = field(default_factory=dict)  # kept, with a new (size, mtime)
    carry: list[tuple[Source, np.ndarray]] = field(default_factory=list)  # (source, usable-row mask)
    dropped: list[Path] = field(default_factory=list)  # segment files the commit stops listing
    have: IdSet = field(default_factory=IdSet)  # content ids with a usable vector

    @property
    def changes_index(self) -> bool:
        return bool(self.restat or self.carry or self.dropped)


def plan_segments(index: CacheIndex | None, width: int) -> SegmentPlan:
    """Which committed vectors a rerun can use, from a stat of each segment (read whole only when
    its stat changed). With a cache width other than ``width`` nothing is used: all re-embedded."""
    plan = SegmentPlan()
    if index is None:
        return plan
    usable_width = int(index.attrs.get("feature_dim", -1)) == width
    usable = np.zeros(index.vector_count, bool)
    for source in index.sources():
        readable = source.segment not in index.unreadable
        if usable_width and readable and source.segment >= 0 and stat_matches(index.path, index.segments, source.segment):
            plan.keep.append(source.segment)
            usable[source.start : source.stop] = True
            continue
        mask, digest = _check(source, width) if usable_width and readable else (None, "")
        if source.segment >= 0 and mask is not None and mask.all() and digest == index.segments.digest[source.segment]:
            stat = source.file.stat()
            plan.keep.append(source.segment)
            plan.restat[source.segment] = (stat.st_size, stat.st_mtime_ns)
            usable[source.start : source.stop] = True
            continue
        if mask is not None and mask.any():
            plan.carry.append((source, mask))
            usable[source.start : source.stop] = mask
        if source.segment >= 0:
            plan.dropped.append(source.file)
    if index.vector_ids is None:  # a lean index: the ids' hashes, each match checked against its segment
        plan.have.update_hashed(index.hashed.limited(None if usable.all() else usable))
    else:
        plan.have.update(index.vector_ids if usable.all() else index.vector_ids[usable])  # all: no copy
    return plan


def _check(source: Source, width: int) -> tuple[np.ndarray | None, str]:
    try:
        mask, digest = check_blocks(source.blocks(width))
    except CacheError:  # missing, damaged (checksum) or of another width: re-embedded
        return None, ""
    return (mask, digest) if len(mask) == source.stop - source.start else (None, "")


def commit(
    cache_path: Path,
    index: CacheIndex | None,
    plan: SegmentPlan,
    *,
    attrs: dict[str, object],
    classes: list[str],
    images: ImageTable,
    skipped: SkipTable,
    feature_dim: int,
    dtype: str,
    embedded: set[bytes] = frozenset(),
    fold: bool = False,
    unchanged: Callable[[ImageTable], np.ndarray] | None = None,
) -> None:
    """Write the run's vectors (shards, carried rows) as one new segment and the image rows new to
    the table as one new part (all of them with ``fold``: :mod:`featx.cache.parts`), then the index.

    ``unchanged(images)`` (for each row, the committed row equal to it, else -1) saves reading the
    committed table to find them. The index must give a vector to every id in ``embedded`` (this run's) and every image not
    skipped; if one is missing (its shard was deleted meanwhile) CacheError, and the committed
    cache stays as it was.
    """
    shards = list_shards(cache_path)
    kept, committed = _kept(index, plan)  # the kept segments' ids, as arrays; the new segment's in a set (few, usually)
    seen: set[bytes] = set()

    def unseen(ids: np.ndarray, features: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        keep = ~committed.contains(ids)
        keep[keep] = [i not in seen for i in ids[keep].tolist()]
        if keep.any():
            seen.update(ids[keep].tolist())
            yield ids[keep], features[keep]

    def blocks() -> Blocks:
        for source, mask in plan.carry:
            offset = 0
            for ids, features in source.blocks(feature_dim):
                rows = mask[offset : offset + len(ids)]
                offset += len(ids)
                yield from unseen(ids[rows], features[rows])
        for _, ids, features, _, _ in read_shards(cache_path, str(attrs["fingerprint"]), width=feature_dim):
            yield from unseen(ids, features)

    new, _ = write_segment_if_any(cache_path, str(attrs["fingerprint"]), blocks(), feature_dim, dtype)
    committed.update(seen)
    lost = [i for i in embedded if i not in seen and i not in committed]
    skipped_paths = set(skipped.path.tolist())
    listed = (np.fromiter((p not in skipped_paths for p in images.path), bool, len(images)) if skipped_paths
              else np.ones(len(images), bool))  # (paths one at a time: a list of a million costs ~80 bytes each)
    if not lost:
        listed &= ~committed.contains(images.id)
    missing = lost or np.flatnonzero(listed)
    if len(missing):  # raised before the index is replaced: the committed cache is left as it was
        remove_files(segment_dir(cache_path) / name for name in new.name)
        why = (f"{len(lost)} vector(s) embedded for {cache_path} are gone (their shard files in "
               f"{shard_dir(cache_path)} were deleted during the run)") if lost else (
               f"{len(missing)} image(s) of {cache_path} have no usable vector (a damaged or missing segment: "
               "'featx cache verify' names it)")
        raise CacheError(f"{why}; the committed cache is unchanged: re-run 'featx embed' to embed them again.")
    written = [segment_dir(cache_path) / name for name in new.name]
    try:
        before = TableLayout(index.parts, index.runs) if index is not None and index.version >= 3 else None
        rows = None  # folded: every row written again
        if not fold and unchanged is not None:
            rows = unchanged(images)
        elif not fold and index is not None and index.images is not None:
            rows = unchanged_rows(index.images, images)
        table = layout_table(cache_path, images, before, rows, fold=fold)
        written += table.written
        write_index(cache_path, attrs=attrs, classes=classes, images=table, skipped=skipped,
                    segments=SegmentTable.concat([kept, new]), feature_dim=feature_dim, dtype=dtype)
    except BaseException:  # no commit (a full disk, say): the new files go, the shards stay for a rerun
        remove_files(written)
        raise
    crash_point("committed")
    remove_shards(shards)
    remove_unread(cache_path, [*plan.dropped, *table.dropped])  # or, while a reader holds them, the next run


def _kept(index: CacheIndex | None, plan: SegmentPlan) -> tuple[SegmentTable, IdSet]:
    """The segment rows the new index keeps (new stats recorded) and their ids."""
    if index is None or not plan.keep:
        return SegmentTable.empty(), IdSet()
    sources = {s.segment: s for s in index.sources()}
    kept = index.segments.take(np.asarray(plan.keep))
    for row, segment in enumerate(plan.keep):
        if segment in plan.restat:
            kept.size[row], kept.mtime_ns[row] = plan.restat[segment]
    ids = IdSet()
    if index.vector_ids is None:  # a lean index
        rows = np.zeros(index.vector_count, bool)
        for s in plan.keep:
            rows[sources[s].start : sources[s].stop] = True
        ids.update_hashed(index.hashed.limited(rows))
    else:
        ids.update(np.concatenate([index.vector_ids[sources[s].start : sources[s].stop] for s in plan.keep]))
    return kept, ids


def compact(cache_path: Path) -> tuple[int, int]:
    """Merge every segment into one, keeping only vectors an image refers to (call under the lock).

    Returns (segments before, vectors dropped). Never needed for correctness: it saves space and
    files. Crash-safe like a commit: the old segments are deleted only after the new index is in place.
    """
    index = CacheIndex.read(cache_path, hold=False, unreadable_ok=True)
    wanted = IdSet(index.images.id)
    width = int(index.attrs.get("feature_dim", 0))
    plan = plan_segments(index, width)
    plan = SegmentPlan(carry=[*plan.carry, *((s, np.ones(s.stop - s.start, bool)) for s in index.sources()
                                             if s.segment in plan.keep)],
                       dropped=[s.file for s in index.sources() if s.segment >= 0])
    plan.carry = [(s, m & wanted.contains(index.vector_ids[s.start : s.stop])) for s, m in plan.carry]
    before = max(len(index.segments), 1 if index.version < 2 else 0)
    commit(cache_path, index, plan, attrs=index.attrs, classes=index.classes, images=index.images,
           skipped=index.skipped, feature_dim=width, dtype=index.dtype, fold=True)
    return before, len(index.vector_ids) - len(CacheIndex.read(cache_path, hold=False).vector_ids)


def write_cache(path: Path, *, attrs: dict[str, object], classes: list[str], images: ImageTable, skipped: SkipTable,
                vectors: Blocks, feature_dim: int, dtype: str = "float32") -> None:
    """Write a whole new cache at ``path`` (one segment of ``vectors``, then the index): for tools
    and tests that build a cache from arrays. Rows of ``vectors`` must be usable (finite, sane)."""
    segments, _ = write_segment_if_any(Path(path), str(attrs["fingerprint"]), vectors, feature_dim, dtype)
    write_index(Path(path), attrs=attrs, classes=classes, images=layout_table(Path(path), images),
                skipped=skipped, segments=segments, feature_dim=feature_dim, dtype=dtype)


def compact_cache(cache_path: str | Path, *, wait: bool = True) -> tuple[int, int]:
    """:func:`compact` under the cache's writer lock (``wait`` for a running embed, or fail at once);
    returns (segments merged, vectors dropped)."""
    from featx.cache.lock import cache_lock
    from featx.cache.sweep import remove_stale_temporaries

    cache_path = Path(cache_path)
    if cache_path.is_file() and not is_featx_file(cache_path, ENCODING_TYPE):  # before its lock is made beside it
        raise CacheError(f"{cache_path} is not a featx cache (no {ENCODING_TYPE!r} mark); nothing compacted.")
    with cache_lock(cache_path, wait=wait):
        remove_stale_temporaries(cache_path)
        merged = compact(cache_path)
        _remove_stale_search_indexes(cache_path)
        return merged


def _remove_stale_search_indexes(cache_path: Path) -> None:
    """Compacted with the cache: the search indexes of segments it no longer lists go (featx.search)."""
    from featx.cache.locate import SEARCH_INDEX_SUFFIX, search_dir, search_index_path

    folder = search_dir(cache_path)
    if not folder.is_dir():
        return
    index = CacheIndex.read(cache_path, hold=False)
    wanted = {search_index_path(cache_path, name, digest, index.fingerprint).name
              for name, digest in zip(index.segments.name, index.segments.digest)}
    for path in folder.glob(f"*{SEARCH_INDEX_SUFFIX}"):
        if path.name not in wanted:
            path.unlink(missing_ok=True)


def unwritable(cache_path: Path, why: str) -> CacheWriteError:
    """The error of a run that must write where it cannot (a read-only mount or folder)."""
    return CacheWriteError(
        f"{cache_path.parent} is not writable (read-only, or no permission) and {why}; nothing was written. "
        "Choose a writable cache folder ({param}) or fix its permissions.", param="cache",
    )


def committed_work(
    index: CacheIndex | None, plan: SegmentPlan, cache_path: Path, fingerprint: str, feature_dim: int
) -> tuple[IdSet, dict[bytes, str]]:
    """Content ids that already have a usable vector, and those known not to decode (with reasons),
    from the committed segments (:func:`plan_segments`: no vector is read while their stat is
    unchanged) and from shards left by earlier (possibly killed) runs."""
    have = plan.have
    failed: dict[bytes, str] = {}
    if index is not None:
        failed.update((i, r) for i, r in zip(index.skipped.id.tolist(), index.skipped.reason) if i)
    width = feature_dim or None
    for _, ids, _, skipped_ids, reasons in read_shards(cache_path, fingerprint, features=False, width=width):
        have.update(ids)
        failed.update(zip(skipped_ids.tolist(), reasons))
    return have, failed


def changed_index(index: CacheIndex | None, plan: SegmentPlan, cache_path: Path, images: ImageTable,
                  skipped: SkipTable, classes: list[str], root: str, same_images: bool | None = None) -> bool:
    """Whether a run must commit a new index: new vectors, or tables, classes or root not as committed
    (``same_images``: whether ``images`` is the committed table, known to a run that read the index
    without it; None: compared here)."""
    if index is None or index.version < 2 or plan.changes_index or list_shards(cache_path):
        return True
    if list(index.classes) != list(classes) or str(index.attrs.get("root")) != root:
        return True
    if same_images is False:
        return True
    tables = [(index.skipped, skipped)] if same_images else [(index.images, images), (index.skipped, skipped)]
    for old, new in tables:
        if len(old) != len(new):
            return True
        for name in (f.name for f in fields(new)):
            if not np.array_equal(getattr(old, name), getattr(new, name)):
                return True
    return False
