"""Joining content ids as integers: the same rows as a dict would give, hash collisions included."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import featx.cache.idset
import featx.cache.tables
from featx.cache.tables import ID_DTYPE, has_repeats, rows_of


def _ids(n: int, salt: str = "") -> np.ndarray:
    return np.asarray([hashlib.sha256(f"{salt}{i}".encode()).hexdigest() for i in range(n)], ID_DTYPE)


@pytest.mark.parametrize("block", [65536, 7])  # 7: the matches compared a few at a time
def test_rows_of_finds_each_id_like_a_dict_and_minus_one_for_absent_ones(monkeypatch, block):
    monkeypatch.setattr(featx.cache.tables, "_BLOCK", block)
    keys = _ids(500)
    wanted = np.concatenate([keys[::-3], _ids(20, "other"), keys[:2]])
    where = {k: row for row, k in enumerate(keys.tolist())}
    assert rows_of(keys, wanted).tolist() == [where.get(w, -1) for w in wanted.tolist()]
    paths = np.asarray([f"c/{i}.png" for i in range(50)], dtype=object)  # str objects join alike
    asked = np.asarray(["c/3.png", "none", "c/49.png"], dtype=object)
    assert rows_of(paths, asked).tolist() == [3, -1, 49]


def test_ids_that_share_a_hash_are_still_told_apart(monkeypatch):
    keys, wanted = _ids(50), _ids(60)[::-1]
    monkeypatch.setattr(featx.cache.tables, "id_hashes", lambda ids: np.zeros(len(ids), np.uint64))
    where = {k: row for row, k in enumerate(keys.tolist())}
    assert rows_of(keys, wanted).tolist() == [where.get(w, -1) for w in wanted.tolist()]
    assert not has_repeats(keys) and has_repeats(np.concatenate([keys, keys[7:8]]))


def test_repeats_are_found_among_a_hundred_thousand_ids():
    ids = _ids(100_000)
    assert not has_repeats(ids)
    assert has_repeats(np.concatenate([ids, ids[12345:12346]]))


def test_an_id_set_answers_like_a_python_set_for_a_whole_column(monkeypatch):
    from featx.cache.idset import IdSet

    held, asked = _ids(300), np.concatenate([_ids(300)[::7], _ids(40, "absent")])
    ids = IdSet(held[:100])
    ids.update(held[100:].tolist())  # a second block, as bytes
    ids.update(held[:5])  # repeats are harmless
    expected = [i in set(held.tolist()) for i in asked.tolist()]
    assert ids.contains(asked).tolist() == expected and len(ids) == 300
    monkeypatch.setattr(featx.cache.idset, "_BLOCK", 7)  # asked a few at a time: the same answers
    assert ids.contains(asked).tolist() == expected and not ids.contains(asked[:0]).size
    assert held[3].tobytes() in ids and _ids(1, "absent")[0].tobytes() not in ids
    monkeypatch.setattr(featx.cache.idset, "id_hashes", lambda values: np.zeros(len(values), np.uint64))
    collided = IdSet(held)
    assert collided.contains(asked).tolist() == expected  # every hash equal: the ids are compared whole
