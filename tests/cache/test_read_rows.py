"""Rows read from a vector file in any order, repeats allowed, are the rows asked for (read_rows
reads the chunks that hold them as slices: issue 31's streaming heads read scattered rows)."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from featx.cache.segments import read_rows


@pytest.mark.parametrize("chunks", [(256, 3), (100, 3), None])
def test_scattered_rows_come_back_in_the_order_asked(tmp_path, chunks):
    data = np.arange(2000 * 3, dtype=np.float32).reshape(2000, 3)
    file = tmp_path / "v.h5"
    with h5py.File(file, "w") as h5:
        h5.create_dataset("features", data=data, chunks=chunks)
    rng = np.random.default_rng(0)
    for rows in (rng.choice(2000, 700, replace=False), rng.integers(0, 2000, 900), np.asarray([1999, 0, 1999, 256, 255]),
                 np.arange(4096 + 300, 0, -7) % 2000, np.zeros(0, np.int64), np.asarray([5])):
        np.testing.assert_array_equal(read_rows(file, "features", rows), data[rows])
