"""PackedStrings: a text column as one UTF-8 buffer reads back as the strings it was given."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

import featx.cache.packed as cache_packed
import featx.data.packed as packed
from featx.cache.packed import read_packed
from featx.cache.tables import STR
from featx.data.packed import PackedStrings

WORDS = ["c0/a.png", "", "ünïcode/ß.jpg", "c1/" + "x" * 300 + ".png", "c0/b.png", "日本/画像.png", "z"]


def test_rows_read_back_as_the_strings_given():
    column = PackedStrings.from_strings(WORDS)
    assert len(column) == len(WORDS) and column.shape == (len(WORDS),)
    assert [column[i] for i in range(len(WORDS))] == WORDS
    assert column[-1] == "z" and list(column) == WORDS and column.tolist() == WORDS
    assert np.asarray(column).tolist() == WORDS and np.asarray(column).dtype == object
    assert column.nbytes < sum(len(w.encode()) + 8 for w in WORDS) + 16
    with pytest.raises(IndexError):
        column[len(WORDS)]


@pytest.mark.parametrize("key", [slice(None), slice(2, 5), slice(5, 2), slice(None, None, 2), slice(-3, None),
                                 np.array([4, 0, 0, 6]), np.array([], np.int64),
                                 np.array([i % 3 == 0 for i in range(len(WORDS))])])
def test_selections_are_columns_of_the_rows_selected(key):
    taken = PackedStrings.from_strings(WORDS)[key]
    assert isinstance(taken, PackedStrings)
    assert taken.tolist() == np.asarray(WORDS, dtype=object)[key].tolist()


def test_equality_compares_row_by_row():
    column = PackedStrings.from_strings(WORDS)
    other = np.asarray(WORDS, dtype=object)
    other[2] = "changed"
    assert (column == other).tolist() == [i != 2 for i in range(len(WORDS))]
    assert (column != other).tolist() == [i == 2 for i in range(len(WORDS))]
    assert np.array_equal(column, np.asarray(WORDS, dtype=object))


def test_an_hdf5_text_column_reads_packed_a_block_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(cache_packed, "_BLOCK", 3)  # several blocks, the last one short
    words = WORDS * 3
    with h5py.File(tmp_path / "t.h5", "w") as h5:
        h5.create_dataset("path", data=np.asarray(words, dtype=object), dtype=STR)
        h5.create_dataset("none", data=np.asarray([], dtype=object), dtype=STR)
    with h5py.File(tmp_path / "t.h5", "r") as h5:
        column, empty = read_packed(h5["path"]), read_packed(h5["none"])
        middle = read_packed(h5["path"], slice(2, 8))
    assert list(column) == words and len(empty) == 0 and empty.tolist() == []
    assert list(middle) == words[2:8]


def test_iteration_crosses_blocks(monkeypatch):
    monkeypatch.setattr(packed, "_BLOCK", 2)
    assert list(PackedStrings.from_strings(WORDS)) == WORDS


def test_columns_join_and_keep_offsets_small():
    first, second = PackedStrings.from_strings(WORDS[:3]), PackedStrings.from_strings(WORDS[3:])
    joined = PackedStrings.concat([first, second[1:], PackedStrings.from_strings([])])
    assert list(joined) == WORDS[:3] + WORDS[4:] and list(PackedStrings.concat([])) == []
    assert joined.offsets.dtype == np.int32  # 4 bytes a row below 2 GB of text


def test_coded_strings_act_as_a_column_of_their_values():
    from featx.data.packed import CodedStrings

    names = ("train", "val", "test", "")
    codes = np.asarray([0, 3, 1, 0, 2], np.uint8)
    column = CodedStrings(codes, names)
    values = [names[c] for c in codes]
    assert len(column) == 5 and column[1] == "" and list(column) == values == column.tolist()
    assert np.array_equal(column, np.asarray(values, dtype=object)) and np.asarray(column).dtype == object
    assert (column == "train").tolist() == [v == "train" for v in values] and not (column == "other").any()
    assert list(column[1:3]) == values[1:3] and list(column[np.asarray([4, 0])]) == ["test", "train"]
    assert (column != np.asarray(values[::-1], dtype=object)).tolist() == [a != b for a, b in zip(values, values[::-1])]
