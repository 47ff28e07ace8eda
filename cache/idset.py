"""A set of content ids held as arrays: what a run already has a vector for, at a million images.

A Python set of a million ids costs about 140 bytes each (the bytes objects and the table); this
one keeps the id arrays it was given (often views of the index's own) and 16 bytes per id of
sorted hashes, and answers membership for a whole column at once.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from featx.cache.tables import ID_DTYPE, id_hashes
from featx.cache.vectorids import HashedIds

_BLOCK = 65536  # ids asked about at a time (their matches, gathered to compare: 4 MB)


class IdSet:
    """Content ids (S64); :meth:`contains` asks for many at a time, ``in`` for one."""

    def __init__(self, ids: Iterable[bytes] | np.ndarray = ()) -> None:
        self._blocks: list[np.ndarray] = []
        self._sorted: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None  # hashes, order, all ids
        self._fallback: set[bytes] | None = None  # two different ids share a hash: plain set
        self._hashed: list[HashedIds] = []  # ids a lean index knows by hash (12 bytes each)
        self.update(ids)

    def update(self, ids: Iterable[bytes] | np.ndarray) -> None:
        """Add ``ids`` (an S64 array, or any iterable of ids)."""
        block = np.asarray(ids if isinstance(ids, np.ndarray) else list(ids), ID_DTYPE)
        if len(block):
            self._blocks.append(block)
            self._sorted = self._fallback = None

    def update_hashed(self, ids: HashedIds) -> None:
        """Add the vectors' ids of a lean index, kept as their hashes."""
        self._hashed.append(ids)

    def __ior__(self, ids: Iterable[bytes]) -> IdSet:
        self.update(ids)
        return self

    def contains(self, ids: np.ndarray) -> np.ndarray:
        """Whether each of ``ids`` (S64) is in the set."""
        ids = np.asarray(ids, ID_DTYPE)
        found = None
        for hashed in self._hashed:
            found = hashed.contains(ids) if found is None else found | hashed.contains(ids)
        if found is None:
            found = np.zeros(len(ids), bool)
        if not self._blocks or not len(ids):
            return found
        return found | self._contains(ids)

    def _contains(self, ids: np.ndarray) -> np.ndarray:
        self._prepare()
        if self._fallback is not None:
            return np.fromiter((i in self._fallback for i in ids.tolist()), bool, len(ids))
        hashes, order, every = self._sorted
        found = np.empty(len(ids), bool)
        for start in range(0, len(ids), _BLOCK):  # a block at a time: the matched ids are gathered to compare
            block = ids[start : start + _BLOCK]
            place = np.minimum(np.searchsorted(hashes, id_hashes(block)), len(hashes) - 1)
            found[start : start + len(block)] = every[order[place]] == block
        return found

    def __contains__(self, content_id: bytes) -> bool:
        return bool(self.contains(np.asarray([content_id], ID_DTYPE))[0])

    def __len__(self) -> int:
        """How many ids (those of a lean index counted apart: ask :meth:`contains` for overlaps)."""
        hashed = sum(len(h) for h in self._hashed)
        if not self._blocks:
            return hashed
        self._prepare()
        return hashed + (len(self._fallback) if self._fallback is not None else len(np.unique(self._sorted[0])))

    def _prepare(self) -> None:
        if self._sorted is not None or self._fallback is not None:
            return
        every = self._blocks[0] if len(self._blocks) == 1 else np.concatenate(self._blocks)
        self._blocks = [every]
        hashes = id_hashes(every)
        order = np.argsort(hashes, kind="stable")
        hashes = hashes[order]
        same = np.flatnonzero(hashes[1:] == hashes[:-1])
        if len(same) and bool((every[order[same]] != every[order[same + 1]]).any()):
            self._fallback = set(every.tolist())  # a collision of 64-bit hashes: never in practice
            return
        self._sorted = (hashes, order, every)
