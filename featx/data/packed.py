"""A column of text packed as one UTF-8 buffer and row offsets: a few bytes per row beyond the text
itself, where a NumPy array of Python ``str`` costs ~60 bytes of object per row (a million paths: 25 MB
instead of 75 MB, and no million objects for the allocator to keep)."""

from __future__ import annotations

import operator
from collections.abc import Iterator

import numpy as np

_BLOCK = 65536  # rows decoded at a time: their str objects are the only per-row objects
_GATHER = 8192  # rows gathered at a time: three int64 byte positions per byte of them (~5 MB)


class PackedStrings:
    """Read-only strings: ``column[i]`` is a ``str``; a slice, mask or index array gives another
    ``PackedStrings``; ``np.asarray(column)`` (and anything that needs it) gives the object array."""

    dtype = np.dtype(object)  # what it stands for: tables check a text column's kind by it
    ndim = 1

    def __init__(self, buffer: np.ndarray, offsets: np.ndarray):
        self.buffer = buffer  # uint8: every row's UTF-8 bytes, in order
        # len + 1: row i is buffer[offsets[i]:offsets[i + 1]]; int32 below 2 GB of text (4 bytes a row, not 8)
        self.offsets = offsets.astype(np.int32) if len(buffer) < 2**31 and offsets.dtype != np.int32 else offsets

    @classmethod
    def from_strings(cls, strings) -> PackedStrings:
        return cls.from_blocks([[s.encode() if isinstance(s, str) else bytes(s) for s in strings]])

    @classmethod
    def from_blocks(cls, blocks) -> PackedStrings:
        """Rows given as blocks, each a list of ``bytes`` (UTF-8): one block's objects in memory at a time."""
        buffers, lengths = [np.zeros(0, np.uint8)], [np.zeros(0, np.int64)]
        for block in blocks:
            buffers.append(np.frombuffer(b"".join(block), np.uint8))
            lengths.append(np.fromiter(map(len, block), np.int64, len(block)))
        counts = np.concatenate(lengths)
        offsets = np.zeros(len(counts) + 1, np.int64)
        np.cumsum(counts, out=offsets[1:])
        return cls(np.concatenate(buffers), offsets)

    @classmethod
    def concat(cls, columns: list[PackedStrings]) -> PackedStrings:
        """The rows of ``columns``, one after the other."""
        if not columns:
            return cls.from_blocks([])
        ends = np.cumsum([0] + [len(c.buffer) for c in columns[:-1]])
        offsets = np.concatenate([columns[0].offsets[:1]] + [c.offsets[1:] - c.offsets[0] + end
                                                             for c, end in zip(columns, ends)])
        return cls(np.concatenate([c.buffer for c in columns]), offsets)

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
        for start in range(0, len(rows), _GATHER):  # gathered a block of rows at a time: the byte positions
            block = rows[start : start + _GATHER]  # of a million rows at once would cost 24 bytes a byte
            size = lengths[start : start + _GATHER]
            into = offsets[start : start + len(block)]
            within = np.arange(int(size.sum()), dtype=np.int64) - np.repeat(into - into[0], size)
            buffer[into[0] : into[0] + len(within)] = self.buffer[np.repeat(self.offsets[block], size) + within]
        return PackedStrings(buffer, offsets)

    def __iter__(self) -> Iterator[str]:
        for start in range(0, len(self), _BLOCK):  # one block's bytes at a time
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



class CodedStrings:
    """Read-only strings of a few distinct values (a split column) as one byte each: ``codes`` index
    ``names``. Rows, slices, masks and index arrays work as on a NumPy column of ``str``, without a
    million object pointers (8 bytes a row); ``np.asarray(column)`` gives the object array."""

    dtype = np.dtype(object)
    ndim = 1

    def __init__(self, codes: np.ndarray, names: tuple[str, ...]):
        self.codes, self.names = codes, names

    def __len__(self) -> int:
        return len(self.codes)

    @property
    def shape(self) -> tuple[int]:
        return (len(self),)

    def __getitem__(self, key):
        if isinstance(key, (int, np.integer)):
            return self.names[self.codes[key]]
        return CodedStrings(self.codes[key], self.names)

    def __iter__(self) -> Iterator[str]:
        return map(self.names.__getitem__, self.codes.tolist())

    def tolist(self) -> list[str]:
        return list(self)

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        out = np.asarray(self.names, dtype=object)[self.codes]
        return out if dtype is None else out.astype(dtype)

    def __eq__(self, other) -> np.ndarray:  # type: ignore[override]
        if isinstance(other, str):
            return self.codes == (self.names.index(other) if other in self.names else -1)
        return np.asarray(self) == np.asarray(other, dtype=object)

    def __ne__(self, other) -> np.ndarray:  # type: ignore[override]
        return ~(self == other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CodedStrings({len(self)} rows of {self.names})"
