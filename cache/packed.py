"""A column of text packed as one UTF-8 buffer and row offsets: a few bytes per row beyond the text
itself, where a NumPy array of Python ``str`` costs ~60 bytes of object per row (a million paths: 25 MB
instead of 75 MB, and no million objects for the allocator to keep)."""

from __future__ import annotations

import operator
from collections.abc import Iterator

import h5py
import numpy as np

from featx.cache.schema import read

_BLOCK = 65536  # rows decoded at a time while reading: their bytes objects are the only per-row objects


class PackedStrings:
    """Read-only strings: ``column[i]`` is a ``str``; a slice, mask or index array gives another
    ``PackedStrings``; ``np.asarray(column)`` (and anything that needs it) gives the object array."""

    dtype = np.dtype(object)  # what it stands for: tables check a text column's kind by it
    ndim = 1

    def __init__(self, buffer: np.ndarray, offsets: np.ndarray):
        self.buffer = buffer  # uint8: every row's UTF-8 bytes, in order
        self.offsets = offsets  # int64, len + 1: row i is buffer[offsets[i]:offsets[i + 1]]

    @classmethod
    def from_strings(cls, strings) -> PackedStrings:
        return cls._packed([[s.encode() if isinstance(s, str) else bytes(s) for s in strings]])

    @classmethod
    def read(cls, dataset: h5py.Dataset) -> PackedStrings:
        """A text column of an HDF5 file, a block of rows decoded (and packed) at a time."""
        return cls._packed(read_bytes(dataset, np.s_[start : start + _BLOCK]) for start in range(0, len(dataset), _BLOCK))

    @classmethod
    def _packed(cls, blocks) -> PackedStrings:
        buffers, lengths = [np.zeros(0, np.uint8)], [np.zeros(0, np.int64)]
        for block in blocks:
            buffers.append(np.frombuffer(b"".join(block), np.uint8))
            lengths.append(np.fromiter(map(len, block), np.int64, len(block)))
        counts = np.concatenate(lengths)
        offsets = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(np.concatenate(buffers), offsets)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def shape(self) -> tuple[int]:
        return (len(self),)

    @property
    def nbytes(self) -> int:
        return self.buffer.nbytes + self.offsets.nbytes

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            row = range(len(self))[key]  # negative rows count from the end; out of range raises IndexError
            return self.buffer[self.offsets[row] : self.offsets[row + 1]].tobytes().decode()
        if isinstance(key, slice) and key.step in (None, 1):  # contiguous rows: a view of the buffer
            span = range(len(self))[key]
            offsets = self.offsets[span.start : max(span.start, span.stop) + 1]
            return PackedStrings(self.buffer[offsets[0] : offsets[-1]], offsets - offsets[0])
        rows = np.arange(len(self))[key]  # a boolean mask or row numbers, as NumPy reads them
        lengths = self.offsets[rows + 1] - self.offsets[rows]
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        buffer = np.empty(int(offsets[-1]), np.uint8)
        for start in range(0, len(rows), _BLOCK):  # gathered a block of rows at a time: the byte positions
            block = rows[start : start + _BLOCK]  # of a million rows at once would cost 8 bytes a byte
            size = lengths[start : start + _BLOCK]
            into = offsets[start : start + len(block)]
            within = np.arange(int(size.sum()), dtype=np.int64) - np.repeat(into - into[0], size)
            buffer[into[0] : into[0] + len(within)] = self.buffer[np.repeat(self.offsets[block], size) + within]
        return PackedStrings(buffer, offsets)

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self), _BLOCK):
            bounds = self.offsets[start : start + _BLOCK + 1]
            chunk, first = self.buffer[bounds[0] : bounds[-1]].tobytes(), int(bounds[0])
            ends = (bounds - first).tolist()
            yield from (chunk[a:b].decode() for a, b in zip(ends[:-1], ends[1:]))

    def tolist(self) -> list[str]:
        return list(self)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.empty(len(self), dtype=object)
        out[:] = self.tolist()
        return out if dtype is None else out.astype(dtype)

    def __eq__(self, other) -> np.ndarray:  # type: ignore[override]
        """Row by row against a ``str`` or a column of as many rows (one row's ``str`` at a time in memory)."""
        if isinstance(other, str):
            return np.fromiter((value == other for value in self), bool, len(self))
        other = other if isinstance(other, PackedStrings) else np.asarray(other, dtype=object)
        if len(other) != len(self):
            raise ValueError(f"cannot compare {len(self)} strings with {len(other)}")
        return np.fromiter(map(operator.eq, self, other), bool, len(self))

    def __ne__(self, other) -> np.ndarray:  # type: ignore[override]
        return ~(self == other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PackedStrings({len(self)} rows, {self.nbytes} bytes)"


def read_bytes(dataset: h5py.Dataset, selection) -> list[bytes]:
    """Rows of a text dataset as their UTF-8 bytes (no ``str`` made)."""
    return [v if isinstance(v, bytes) else str(v).encode() for v in read(dataset, selection, text=False).tolist()]
