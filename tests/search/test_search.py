"""featx.search: a planted copy is its original's top hit, exactly as the cached vectors rank it;
filters, queries by file, cached path and id, caches compared with --against, one-line refusals."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

import featx
import featx.cache.segments
from featx.cache.store import CacheIndex
from featx.errors import MissingFileError, OptionError
from featx.features.vectors import load_features
from featx.options import EmbedOptions
from featx.search import search
from featx.search.exact import TopK, exact_top_k, unit
from tests.imagegen import make_class_folder, write_image
from tests.search.conftest import embed, jpeg_copy


def _cosine_ranking(cache, query_path):
    """The other cached images ranked by cosine to ``query_path``'s vector, computed from load_features."""
    features = load_features(cache)
    Z = unit(features.X)
    q = Z[list(features.paths).index(str(query_path))]
    scores = Z @ q
    order = [i for i in np.argsort(-scores, kind="stable") if features.paths[i] != str(query_path)]
    return [str(features.paths[i]) for i in order], scores[order]


def test_a_planted_copy_is_its_originals_top_hit_and_hits_follow_the_cached_vectors(cache, dataset):
    original = dataset / "test" / "cat" / "cat_0.png"
    result = search(cache, [original], top=5)
    (match,) = result.matches
    assert match.hits[0].path == str(dataset / "train" / "dog" / "planted.jpg")
    assert (match.hits[0].split, match.hits[0].label) == ("train", "dog")
    assert match.hits[0].score > 0.99
    assert str(original) not in [h.path for h in match.hits]  # the query is not its own hit
    paths, scores = _cosine_ranking(cache, original)
    assert [h.path for h in match.hits] == paths[:5]
    np.testing.assert_allclose([h.score for h in match.hits], scores[:5], rtol=1e-5)
    assert featx.search is search  # the facade's function, even with the package featx.search imported


def test_queries_by_cached_path_relative_or_gone_and_by_content_id(cache, dataset):
    original = dataset / "test" / "cat" / "cat_0.png"
    by_file = search(cache, original, top=3).matches[0].hits
    content_id = by_file[0].id
    by_id = search(cache, [content_id], top=1).matches[0].hits
    assert by_id[0].path == by_file[0].path  # the planted copy's own id finds it first
    moved = dataset.parent / "moved"
    shutil.move(dataset, moved)  # the files are gone; the cache still lists their paths
    gone = search(cache, [str(original)], top=3).matches[0].hits
    assert [h.path for h in gone] == [h.path for h in by_file]


def test_a_query_file_the_cache_holds_is_not_embedded_again(cache, dataset, tmp_path, offline_embedding):
    outside = tmp_path / "elsewhere" / "same_bytes.png"
    outside.parent.mkdir()
    shutil.copyfile(dataset / "train" / "cat" / "cat_1.png", outside)
    hits = search(cache, [outside], top=1).matches[0].hits
    assert hits[0].path == str(dataset / "train" / "cat" / "cat_1.png") and hits[0].score == pytest.approx(1.0)
    assert offline_embedding == []


def test_a_new_query_file_is_embedded_with_the_caches_configuration_once(cache, dataset, tmp_path,
                                                                         offline_embedding):
    query = jpeg_copy(dataset / "train" / "dog" / "dog_2.png", tmp_path / "query.jpg")
    first = search(cache, [query], top=1)
    again = search(cache, [query], top=1)
    assert first.matches[0].hits[0].path == str(dataset / "train" / "dog" / "dog_2.png")
    assert first.matches[0].hits[0].score > 0.99
    assert again.matches[0].hits[0].score == pytest.approx(first.matches[0].hits[0].score)
    assert len(offline_embedding) == 2 and list(cache.parent.glob("files--*.h5"))  # the loose-files cache
    assert CacheIndex.read(next(cache.parent.glob("files--*.h5"))).fingerprint == CacheIndex.read(cache).fingerprint


def test_filters_keep_only_the_split_and_class_asked(cache, dataset):
    original = dataset / "test" / "cat" / "cat_0.png"
    hits = search(cache, [original], top=50, split="test").matches[0].hits
    assert hits and {h.split for h in hits} == {"test"} and len(hits) == 5  # 6 test images, less itself
    hits = search(cache, [original], top=50, label="cat").matches[0].hits
    assert {h.label for h in hits} == {"cat"} and len(hits) == 5
    hits = search(cache, [original], top=50, split="train", label="dog").matches[0].hits
    assert {(h.split, h.label) for h in hits} == {("train", "dog")} and len(hits) == 4
    with pytest.raises(OptionError, match="'label' parameter 'bird' is not a class .*cat, dog"):
        search(cache, [original], label="bird")
    with pytest.raises(OptionError, match="'split' parameter must be one of train, val, test"):
        search(cache, [original], split="training")


def test_blocked_search_across_segments_equals_a_full_ranking(tmp_path, monkeypatch):
    data = make_class_folder(tmp_path / "d", per_class=4)
    cache = embed(data, tmp_path / "c.h5")
    make_class_folder(data, classes=("eel",), per_class=5)  # a second segment
    embed(data, cache)
    assert len(CacheIndex.read(cache).segments.name) == 2
    monkeypatch.setattr(featx.cache.segments, "BLOCK_ROWS", 3)  # many blocks per segment
    features = load_features(cache)
    index = CacheIndex.read(cache)
    queries = np.random.default_rng(0).normal(size=(4, features.feature_dim)).astype(np.float32)
    scores, rows = exact_top_k(index, queries, 6)
    full = unit(queries) @ unit(np.asarray(load_features(cache).X)).T  # image rows = vector rows here: no copies
    row_of = {v: r for r, v in enumerate(index.vector_ids.tolist())}
    by_vector = np.empty_like(full)
    by_vector[:, [row_of[i.encode()] for i in features.ids]] = full
    expected = np.argsort(-by_vector, axis=1, kind="stable")[:, :6]
    np.testing.assert_array_equal(rows, expected)
    np.testing.assert_allclose(scores, np.take_along_axis(by_vector, expected, axis=1), rtol=1e-5)


def test_top_k_merges_blocks_and_pads_what_is_missing():
    rng = np.random.default_rng(1)
    scores = rng.normal(size=(3, 50)).astype(np.float32)
    top = TopK(3, 4)
    for start in range(0, 50, 7):
        top.add(scores[:, start : start + 7], np.arange(start, min(start + 7, 50)))
    got_scores, got_rows = top.result()
    np.testing.assert_array_equal(got_rows, np.argsort(-scores, axis=1)[:, :4])
    small = TopK(1, 5)
    small.add(scores[:1, :2], np.arange(2))
    assert small.result()[1].shape == (1, 2)


def test_against_finds_the_images_two_caches_share_and_refuses_another_configuration(cache, dataset, tmp_path):
    other = make_class_folder(tmp_path / "other", classes=("bird", "fish"), per_class=3)
    shutil.copyfile(dataset / "train" / "cat" / "cat_2.png", other / "bird" / "exact_copy.png")
    jpeg_copy(dataset / "test" / "dog" / "dog_1.png", other / "fish" / "reencoded.jpg")
    other_cache = embed(other, tmp_path / "featx" / "other.h5")
    result = search(cache, against=other_cache, top=2)
    pairs = [(m.query, m.hits[0].path) for m in result]
    assert pairs == [(str(dataset / "train" / "cat" / "cat_2.png"), str(other / "bird" / "exact_copy.png")),
                     (str(dataset / "test" / "dog" / "dog_1.png"), str(other / "fish" / "reencoded.jpg"))]
    assert result.matches[0].score == pytest.approx(1.0) and result.matches[1].score > 0.99
    assert (result.matches[0].split, result.matches[0].label, result.matches[0].hits[0].label) == ("train", "cat", "bird")
    assert len(search(cache, against=other_cache, top=None)) == 13  # every image of the cache, with its nearest
    fish_only = search(cache, against=other_cache, top=None, label="fish")
    assert {m.hits[0].label for m in fish_only} == {"fish"}

    wider = EmbedOptions("MobileNetV2", weights="none", image_size=48).resolve()
    elsewhere = embed(other, tmp_path / "featx" / "other48.h5", config=wider)
    with pytest.raises(OptionError, match=r"^The 'against' parameter .*other48.h5 was embedded with another "
                                          r"backbone configuration .*cannot be compared"):
        search(cache, against=elsewhere)
    with pytest.raises(OptionError, match="is the cache searched"):
        search(cache, against=cache)
    with pytest.raises(OptionError, match="give queries or an other cache, not both"):
        search(cache, [dataset / "test" / "cat" / "cat_0.png"], against=other_cache)


def test_bad_input_is_refused_in_one_line(cache, tmp_path, offline_embedding):
    with pytest.raises(MissingFileError, match="'queries' parameter 'nowhere.png' is not an image file, a path "
                                               "listed in"):
        search(cache, ["nowhere.png"])
    with pytest.raises(OptionError, match="at least one image file"):
        search(cache, [])
    with pytest.raises(OptionError, match="'top' parameter"):
        search(cache, ["x"], top=0)
    with pytest.raises(TypeError, match="'queries' parameter must be a path"):
        search(cache, 42)
    with pytest.raises(FileNotFoundError):
        search(tmp_path / "missing.h5", ["x"])
    broken = write_image(tmp_path / "q.png")
    broken.write_bytes(b"not an image")
    with pytest.raises(featx.FeatxError, match="None of the 1 images given could be embedded .*q.png: not an image"):
        search(cache, [broken])
