"""The loose-files cache (predict, Embedder) is shared by every call of a configuration: a call that
names other files keeps the earlier files listed and their vectors, through a compact too."""

from __future__ import annotations

import numpy as np

from featx.cache.append import compact_cache
from featx.cache.store import CacheIndex
from featx.data.layouts import loose_files
from featx.engine.run import embed_into_cache
from tests.cache.test_integrity_cache import CONFIG, RUN, StandInBackbone
from tests.imagegen import write_image


def _embed(paths, cache):
    return embed_into_cache(loose_files(paths), CONFIG, cache, RUN, extractor=StandInBackbone())


def test_a_call_with_other_files_keeps_the_earlier_ones_through_a_compact(tmp_path):
    first = [write_image(tmp_path / f"a{i}.png", seed=100 + i) for i in range(3)]
    second = [write_image(tmp_path / f"b{i}.png", seed=200 + i) for i in range(2)]
    cache = tmp_path / "files.h5"
    _embed(first, cache)
    report = _embed(second, cache)
    assert (report.images, report.embedded, report.reused) == (2, 2, 0)  # the run speaks of its own files
    compact_cache(cache)
    index = CacheIndex.read(cache)
    listed = {p.rsplit("/", 1)[-1] for p in index.images.path}
    assert listed == {"a0.png", "a1.png", "a2.png", "b0.png", "b1.png"}
    assert set(index.images.id.tolist()) <= set(index.vector_ids.tolist()) and len(index.vector_ids) == 5
    again = _embed(first, cache)  # nothing recomputed, nothing rewritten
    assert (again.embedded, again.reused) == (0, 3)
    assert np.array_equal(CacheIndex.read(cache).images.id, index.images.id)
