"""Caches to search, embedded offline by the stand-in backbone of the cache tests (vectors are a
fixed function of the pixels), and a way to embed loose query files with it too."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

import featx.engine.files
from featx.data.layouts import scan_dataset
from featx.engine.run import embed_into_cache
from featx.options import RunOptions
from tests.cache.test_integrity_cache import CONFIG, StandInBackbone
from tests.imagegen import make_class_folder

RUN = RunOptions(batch_size=8, workers=1)


def embed(data: Path, cache: Path, config=CONFIG) -> Path:
    embed_into_cache(scan_dataset(data), config, cache, RUN, extractor=StandInBackbone())
    return cache


def jpeg_copy(source: Path, target: Path) -> Path:
    """The same picture re-encoded: other bytes (another content id), nearly the same vector."""
    target.parent.mkdir(parents=True, exist_ok=True)
    Image.open(source).convert("RGB").save(target, format="JPEG", quality=95)
    return target


@pytest.fixture
def dataset(tmp_path) -> Path:
    """train/test x cat/dog, 3 images each, and in train/dog a re-encoded copy of test/cat/cat_0.png."""
    root = make_class_folder(tmp_path / "data", per_class=3, splits=("train", "test"))
    jpeg_copy(root / "test" / "cat" / "cat_0.png", root / "train" / "dog" / "planted.jpg")
    return root


@pytest.fixture
def cache(tmp_path, dataset) -> Path:
    return embed(dataset, tmp_path / "featx" / "data.h5")


@pytest.fixture
def offline_embedding(monkeypatch):
    """Query files the cache lacks are embedded by the stand-in backbone; the list records each call."""
    calls: list[list[str]] = []

    def stand_in(dataset, config, cache_path, run=RunOptions(), **kwargs):
        calls.append([r.path for r in dataset.records])
        return embed_into_cache(dataset, config, cache_path, run, extractor=StandInBackbone(), **kwargs)

    monkeypatch.setattr(featx.engine.files, "embed_into_cache", stand_in)
    return calls


