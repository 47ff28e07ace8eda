"""featx._gc.gc_paused: the cyclic collector off inside, as it was after, and on the scan of a dataset."""

from __future__ import annotations

import gc

import pytest

from featx._gc import gc_paused
from featx.data import layouts


def test_paused_inside_restored_after_even_on_error_and_nested():
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # the inner pause does not end the outer one
    assert gc.isenabled()
    with pytest.raises(KeyError), gc_paused():
        raise KeyError("x")
    assert gc.isenabled()


def test_a_collector_the_caller_turned_off_stays_off():
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_scan_builds_its_records_with_the_collector_paused(tmp_path, monkeypatch):
    from tests.imagegen import make_class_folder

    make_class_folder(tmp_path / "data", per_class=2)
    seen = []
    original = layouts.dataset_of
    monkeypatch.setattr(layouts, "dataset_of", lambda *a, **k: seen.append(gc.isenabled()) or original(*a, **k))
    dataset = layouts.scan_dataset(tmp_path / "data")
    assert len(dataset.records) == 4 and seen == [False] and gc.isenabled()
