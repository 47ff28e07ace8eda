"""Fuzzing what users hand featx besides images and caches: snapshot folders and Python arguments.

The property: a snapshot folder with random edits of its ``config.json`` and
``preprocessor_config.json`` (or its weights cut short) either reads as a snapshot whose size, patch
and normalisation make sense, or is refused with one OptionError naming ``backbone`` — never another
exception. A Python call with an argument of a random type or value either works or raises a featx
error that is a ValueError or TypeError naming the parameter. Derandomized, as tests/property/test_fuzz.py.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest
from hypothesis import given
from hypothesis import strategies as st

from featx.backbones.hub import Snapshot
from featx.errors import FeatxError, OptionError
from featx.heads import compare_heads, fit_head
from tests.heads.test_heads import blob_features
from tests.property.test_fuzz import FUZZ, SCALE, settings

pytest.importorskip("safetensors")

ODD = st.one_of(st.none(), st.booleans(), st.integers(-10, 10_000), st.floats(allow_nan=True, allow_infinity=True),
                st.text(max_size=5), st.lists(st.one_of(st.integers(-2, 2), st.floats(-1, 1), st.text(max_size=2)),
                                              max_size=4), st.dictionaries(st.sampled_from(["height", "width",
                                                                                            "shortest_edge"]),
                                                                           st.integers(-5, 600), max_size=3))
CONFIG_KEYS = st.sampled_from(["image_size", "patch_size", "model_type", "hidden_size"])
PROCESSOR_KEYS = st.sampled_from(["image_mean", "image_std", "crop_size", "size", "do_center_crop", "do_normalize"])


@pytest.fixture(scope="module")
def snapshot_template(tmp_path_factory):
    from tests.backbones.test_hub import write_snapshot

    return write_snapshot(tmp_path_factory.mktemp("template") / "snap")


@settings(FUZZ, max_examples=40 * SCALE)
@given(config=st.dictionaries(CONFIG_KEYS, ODD, max_size=3), processor=st.dictionaries(PROCESSOR_KEYS, ODD, max_size=3),
       cut=st.one_of(st.none(), st.integers(0, 200)))
def test_a_snapshot_reads_soundly_or_is_refused_in_one_line(snapshot_template, tmp_path_factory, config, processor,
                                                            cut):
    folder = tmp_path_factory.mktemp("snap") / "s"
    shutil.copytree(snapshot_template, folder)
    for name, changes in (("config.json", config), ("preprocessor_config.json", processor)):
        path = folder / name
        path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))
    if cut is not None:
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:cut])
    try:
        snapshot = Snapshot.read(folder)
    except OptionError as exc:
        assert exc.param == "backbone" and "\n" not in str(exc)
        return
    assert isinstance(snapshot.input_size, int) and 0 < snapshot.input_size <= 4096
    assert isinstance(snapshot.patch_size, int) and snapshot.patch_size > 0
    for values in (snapshot.mean, snapshot.std):
        assert values is None or (len(values) == 3 and all(math.isfinite(v) for v in values))
    assert snapshot.std is None or min(snapshot.std) > 0


FEATURES = blob_features(n=40, classes=("a", "b"), dim=6)


@settings(FUZZ, max_examples=30 * SCALE)
@given(name=st.sampled_from(["test_size", "seed", "class_weight", "C", "n_neighbors", "head"]), value=ODD)
def test_a_python_argument_of_any_type_works_or_names_itself(name, value):
    kwargs = {"head": "logreg"} if name in ("C",) else {"head": "knn"} if name == "n_neighbors" else {}
    kwargs[name] = value
    head = kwargs.pop("head", "logreg")
    try:
        fit_head(FEATURES, head, **kwargs)
    except FeatxError as exc:
        assert isinstance(exc, (ValueError, TypeError)), (name, value, type(exc).__mro__)
        assert exc.param in (name, "head", "params", "class_weight"), (name, value, exc.param, str(exc))


@settings(FUZZ, max_examples=20 * SCALE)
@given(heads=st.one_of(st.text(max_size=8), st.lists(st.sampled_from(["logreg", "knn", "", "LOGREG", "x"]),
                                                                 max_size=3)),
       cv=st.one_of(st.none(), st.integers(-3, 50), st.text(max_size=3), st.floats(0, 5)))
def test_compare_arguments_of_any_type_work_or_name_themselves(heads, cv):
    try:
        compare_heads([FEATURES], heads, cv=cv)
    except FeatxError as exc:
        assert isinstance(exc, (ValueError, TypeError)), (heads, cv, type(exc).__mro__)
        assert exc.param in ("heads", "cv"), (heads, cv, exc.param, str(exc))
