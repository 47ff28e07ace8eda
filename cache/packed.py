"""Text columns of an HDF5 file read packed (:class:`featx.data.packed.PackedStrings`): a block of rows
decoded at a time, so that a million paths never exist as a million ``str`` objects."""

from __future__ import annotations

import h5py
import numpy as np

from featx.cache.schema import read
from featx.data.packed import PackedStrings

_BLOCK = 65536  # rows decoded at a time: their bytes objects are the only per-row objects


def read_packed(dataset: h5py.Dataset, selection: slice = slice(None)) -> PackedStrings:
    """Rows ``selection`` (a contiguous slice) of a text column, packed a block at a time."""
    start, stop, _ = selection.indices(len(dataset))
    return PackedStrings.from_blocks(read_bytes(dataset, np.s_[begin : min(begin + _BLOCK, stop)])
                                     for begin in range(start, stop, _BLOCK))


def read_bytes(dataset: h5py.Dataset, selection) -> list[bytes]:
    """Rows of a text dataset as their UTF-8 bytes (no ``str`` made)."""
    return [v if isinstance(v, bytes) else str(v).encode() for v in read(dataset, selection, text=False).tolist()]
