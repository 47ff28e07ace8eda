"""Augmented views: seeded per image, cached beside the plain vectors, grown with what is new, and
used only for the training images of a fit (never across the split; scores on plain vectors).
A stand-in backbone (the first pixel values) keeps these free of TensorFlow and makes every view
vector checkable against the view's own pixels."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import featx
from featx.cache.catalog import summarize
from featx.cache.delete import delete_cache
from featx.cache.locate import views_caches, views_dir
from featx.cache.store import CacheIndex
from featx.cache.verify import verify_cache
from featx.cli import app
from featx.data.augment import AUGMENTATIONS, ViewRecipe, augment_image, make_view, view_id
from featx.data.images import load_image
from featx.data.layouts import scan_dataset
from featx.engine.run import embed_into_cache
from featx.engine.views import training_views, update_views
from featx.errors import CacheError, CacheNotFoundError, FeatxError, OptionError
from featx.features.vectors import load_features
from featx.features.views import load_views
from featx.heads import compare_heads, fit_head, load_head
from featx.heads.augmented import with_views
from featx.options import EmbedOptions, RunOptions
from tests.imagegen import make_class_folder, pixels, write_image

CONFIG = EmbedOptions("MobileNetV2", weights="none", image_size=32).resolve()
RUN = RunOptions(batch_size=4, workers=2)
WIDTH = 1280  # MobileNetV2's, as the backbone table says
CROP_JITTER = ViewRecipe(2, "crop,jitter")


class StandInBackbone:
    """The first WIDTH pixel values of each image, scaled: deterministic, content-dependent vectors."""

    batch_size = RUN.batch_size
    feature_dim = WIDTH
    backend = "stand-in"

    def __init__(self, fail_after: int | None = None):
        self.calls, self.rows, self.fail_after = 0, 0, fail_after

    def __call__(self, images: np.ndarray) -> np.ndarray:
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("killed")  # a run stopped mid-way, after `fail_after` batches
        self.calls += 1
        self.rows += len(images)
        return images.reshape(len(images), -1)[:, :WIDTH].astype(np.float32) / 255.0


def _embed(data, cache_file, recipe=CROP_JITTER, backbone=None):
    dataset = scan_dataset(data)
    report = embed_into_cache(dataset, CONFIG, cache_file, RUN, extractor=StandInBackbone())
    views = update_views(cache_file, dataset.root, CONFIG, recipe, RUN, extractor=backbone or StandInBackbone())
    return report, views


def _expected_view(path, content_id: bytes, k: int, recipe=CROP_JITTER) -> np.ndarray:
    image = load_image(path, (32, 32))
    return StandInBackbone()(make_view(image, recipe, recipe.view_id(content_id, k))[None])[0]


# -- the recipe and the views themselves -------------------------------------------------------

def test_a_view_is_a_function_of_its_image_and_its_id_alone():
    image = pixels((32, 32), seed=3).astype(np.float32)
    recipe = ViewRecipe(4)
    first, second = (make_view(image, recipe, view_id(b"a" * 64, "f", k)) for k in (0, 1))
    assert np.array_equal(first, make_view(image.copy(), recipe, view_id(b"a" * 64, "f", 0)))  # same id: same pixels
    assert not np.array_equal(first, second)
    assert first.shape == image.shape and first.dtype == np.float32
    assert 0 <= first.min() and first.max() <= 255
    assert view_id(b"a" * 64, "f", 0) != view_id(b"b" * 64, "f", 0) != view_id(b"a" * 64, "g", 0)



def test_a_view_is_its_recipe_applied_by_augment_image_with_the_generator_its_id_seeds():
    image = pixels((32, 24), seed=4).astype(np.float32)
    recipe = ViewRecipe(1, "jitter,crop,flip")
    seed_id = view_id(b"d" * 64, "f", 3)
    rng = np.random.default_rng(int.from_bytes(bytes.fromhex(seed_id.decode())[:8], "little"))
    assert np.array_equal(make_view(image, recipe, seed_id), augment_image(image, "flip,crop,jitter", rng))
    assert augment_image(image, "", np.random.default_rng(0)) is image  # "": no augmentation
    with pytest.raises(OptionError, match="The 'augment' parameter must name one or more of flip, vflip, crop"):
        augment_image(image, "flip,spin", np.random.default_rng(0))

def test_each_augmentation_changes_what_it_says_and_nothing_else():
    image = pixels((24, 32), seed=5).astype(np.float32)
    flips = [make_view(image, ViewRecipe(1, "flip"), view_id(b"c" * 64, "f", k)) for k in range(16)]
    assert {"mirrored": any(np.array_equal(v, image[:, ::-1]) for v in flips),
            "kept": any(np.array_equal(v, image) for v in flips)} == {"mirrored": True, "kept": True}
    assert all(np.array_equal(v, image) or np.array_equal(v, image[:, ::-1]) for v in flips)
    vflips = [make_view(image, ViewRecipe(1, "vflip"), view_id(b"c" * 64, "f", k)) for k in range(16)]
    assert all(np.array_equal(v, image) or np.array_equal(v, image[::-1]) for v in vflips)
    jittered = make_view(image, ViewRecipe(1, "jitter"), view_id(b"c" * 64, "f", 0))
    assert 0 < np.abs(jittered - image).mean() < 0.2 * 255  # a small colour change, same geometry
    assert np.corrcoef(jittered.ravel(), image.ravel())[0, 1] > 0.9
    cropped = make_view(image, ViewRecipe(1, "crop"), view_id(b"c" * 64, "f", 0))
    assert cropped.shape == image.shape and not np.array_equal(cropped, image)


def test_the_recipe_is_normalised_and_its_fingerprint_is_the_views_not_the_plain_vectors():
    assert ViewRecipe(2, "jitter, crop").augment == "crop,jitter"
    assert ViewRecipe(2, "jitter,crop").fingerprint("abc") == ViewRecipe(5, "crop,jitter").fingerprint("abc")
    assert ViewRecipe(2, "crop").fingerprint("abc") != ViewRecipe(2, "crop,jitter").fingerprint("abc")
    assert ViewRecipe(2, "crop").fingerprint("abc") != ViewRecipe(2, "crop").fingerprint("abd")
    assert set(ViewRecipe().names) <= set(AUGMENTATIONS)


@pytest.mark.parametrize("kwargs,param,match", [
    ({"count": -1}, "views", "must be a number of views per image from 0 to 64; got -1"),
    ({"count": 1000}, "views", "from 0 to 64"),
    ({"count": 2, "augment": "flip,rotate"}, "augment", "must name one or more of flip, vflip, crop, jitter"),
    ({"count": 2, "augment": ""}, "augment", "must name one or more"),
])
def test_bad_view_options_name_their_parameter(kwargs, param, match):
    with pytest.raises(ValueError, match=match) as raised:
        ViewRecipe(**kwargs)
    assert isinstance(raised.value, OptionError) and raised.value.param == param


def test_views_are_refused_on_the_ray_engine_before_anything_runs(tmp_path):
    from featx.engine.views import check_views_engine

    # The refusal is about views, not Ray: it comes first whether Ray is installed or not.
    check_views_engine(ViewRecipe(0), "local")
    with pytest.raises(OptionError, match="local engine only") as raised:
        check_views_engine(ViewRecipe(2), "ray")
    assert raised.value.param == "views"
    with pytest.raises(OptionError, match="local engine only"):  # from the API: before any file is scanned
        featx.embed(tmp_path, views=2, engine="ray", cache=tmp_path / "cache")
    assert not (tmp_path / "cache").exists()
    done = CliRunner().invoke(app, ["embed", str(tmp_path), "--views", "2", "--engine", "ray"])
    assert done.exit_code == 2 and "error: --views are embedded on the local engine only" in done.output


# -- the views cache ---------------------------------------------------------------------------

@pytest.fixture
def data(tmp_path):
    return make_class_folder(tmp_path / "data", per_class=4, size=(40, 32))


def test_views_of_every_training_image_are_its_own_pixels_augmented(data, tmp_path):
    cache_file = tmp_path / "c.h5"
    report, views = _embed(data, cache_file)
    assert (report.embedded, views.images, views.embedded, views.reused) == (8, 8, 16, 0)
    assert CacheIndex.read(cache_file).fingerprint == CONFIG.fingerprint  # the plain cache as without views
    loaded = load_views(cache_file)
    assert loaded.X.shape == (16, WIDTH) and loaded.count == 2 and loaded.augment == "crop,jitter"
    features = load_features(cache_file)
    path_of = dict(zip(features.ids, features.paths))
    for row in (0, 5, 15):
        image_id = loaded.image_ids[row]
        expected = _expected_view(path_of[image_id], image_id.encode(), int(loaded.view[row]))
        assert np.allclose(loaded.X[row], expected, atol=1e-6)
    assert sorted(np.unique(loaded.image_ids, return_counts=True)[1]) == [2] * 8
    assert verify_cache(loaded.cache_path)[0] == []  # a views cache is a sound featx cache


def test_a_rerun_embeds_only_the_views_of_new_images_and_new_view_numbers(data, tmp_path):
    cache_file = tmp_path / "c.h5"
    _embed(data, cache_file)
    backbone = StandInBackbone()
    _, views = _embed(data, cache_file, backbone=backbone)
    assert (views.embedded, views.reused, backbone.rows) == (0, 16, 0)  # nothing new: no backbone call

    write_image(data / "cat" / "new.png", size=(40, 32), seed=999)
    backbone = StandInBackbone()
    _, views = _embed(data, cache_file, backbone=backbone)
    assert (views.embedded, views.reused, backbone.rows) == (2, 16, 2)

    backbone = StandInBackbone()
    _, views = _embed(data, cache_file, recipe=ViewRecipe(3, "crop,jitter"), backbone=backbone)
    assert (views.embedded, views.reused, backbone.rows) == (9, 18, 9)  # view number 2 of each of 9 images
    assert len(load_views(cache_file).X) == 27

    (data / "dog" / "dog_0.png").unlink()  # an image gone: its views are no longer listed
    _, views = _embed(data, cache_file, recipe=ViewRecipe(3, "crop,jitter"))
    assert (views.images, views.embedded, views.reused) == (8, 0, 24)
    assert len(load_views(cache_file).X) == 24


def test_views_of_the_same_bytes_are_the_same_pixels_in_any_cache_under_any_backbone(data, tmp_path):
    _embed(data, tmp_path / "a.h5")
    copy = make_class_folder(tmp_path / "other", per_class=1, size=(40, 32))
    for path in sorted(data.rglob("*.png"))[:3]:
        (copy / "cat" / path.name).write_bytes(path.read_bytes())
    other = EmbedOptions("MobileNetV2", weights="none", seed=1, image_size=32).resolve()  # another fingerprint
    dataset = scan_dataset(copy)
    embed_into_cache(dataset, other, tmp_path / "b.h5", RUN, extractor=StandInBackbone())
    update_views(tmp_path / "b.h5", dataset.root, other, CROP_JITTER, RUN, extractor=StandInBackbone())
    a, b = load_views(tmp_path / "a.h5"), load_views(tmp_path / "b.h5")
    shared = sorted(set(a.image_ids) & set(b.image_ids))
    assert len(shared) == 3
    for image in shared:
        rows_a, rows_b = np.flatnonzero(a.image_ids == image), np.flatnonzero(b.image_ids == image)
        assert np.array_equal(a.X[rows_a[np.argsort(a.view[rows_a])]], b.X[rows_b[np.argsort(b.view[rows_b])]])


def test_only_labelled_training_images_get_views(tmp_path):
    data = make_class_folder(tmp_path / "data", per_class=2, splits=("train", "val", "test"))
    dataset = scan_dataset(data)
    embed_into_cache(dataset, CONFIG, tmp_path / "c.h5", RUN, extractor=StandInBackbone())
    table, image_ids = training_views(CacheIndex.read(tmp_path / "c.h5"), ViewRecipe(3))
    assert set(table.split.tolist()) == {"train"} and len(table) == 3 * 4 and len(set(image_ids.tolist())) == 4

    flat = make_class_folder(tmp_path / "flat", per_class=2)
    write_image(flat / "loose.png", seed=4242)  # unlabelled (no class folder)
    embed_into_cache(scan_dataset(flat), CONFIG, tmp_path / "f.h5", RUN, extractor=StandInBackbone())
    table, _ = training_views(CacheIndex.read(tmp_path / "f.h5"), ViewRecipe(2))
    assert len(table) == 2 * 4 and (table.label >= 0).all()  # every labelled image: the hold-out is drawn later


def test_a_killed_views_run_resumes_from_its_shards_and_ends_as_an_uninterrupted_one(data, tmp_path):
    dataset = scan_dataset(data)
    embed_into_cache(dataset, CONFIG, tmp_path / "c.h5", RUN, extractor=StandInBackbone())
    with pytest.raises(KeyboardInterrupt):
        update_views(tmp_path / "c.h5", dataset.root, CONFIG, CROP_JITTER, RUN, extractor=StandInBackbone(fail_after=2))
    backbone = StandInBackbone()
    report = update_views(tmp_path / "c.h5", dataset.root, CONFIG, CROP_JITTER, RUN, extractor=backbone)
    assert backbone.rows == report.embedded == 16 - 2 * RUN.batch_size  # the 2 finished batches were kept
    assert report.reused == 2 * RUN.batch_size
    _embed(data, tmp_path / "clean.h5")
    resumed, clean = load_views(tmp_path / "c.h5"), load_views(tmp_path / "clean.h5")
    order = lambda v: np.lexsort((v.view, v.image_ids.astype(str)))
    assert np.array_equal(resumed.X[order(resumed)], clean.X[order(clean)])


def test_recipes_live_side_by_side_and_deleting_the_cache_deletes_its_views(data, tmp_path):
    cache_file = tmp_path / "c.h5"
    _embed(data, cache_file)
    _embed(data, cache_file, recipe=ViewRecipe(1, "flip"))
    assert len(views_caches(cache_file)) == 2
    with pytest.raises(ValueError, match=r"has views of 2 recipes \(crop,jitter; flip\); choose one with the "
                                         "'augment' parameter") as raised:
        load_views(cache_file)  # never a silent pick
    assert raised.value.param == "augment"
    assert load_views(cache_file, "jitter,crop").augment == "crop,jitter"
    assert load_views(cache_file, "flip").augment == "flip"
    listed = summarize(cache_file).views  # what `featx cache info` shows
    assert sorted((v["augment"], v["views_per_image"], v["vectors"]) for v in listed) == [
        ("crop,jitter", 2, 16), ("flip", 1, 8)]
    with pytest.raises(FileNotFoundError, match="has no views made by the 'augment' parameter vflip"):
        load_views(cache_file, "vflip")
    delete_cache(cache_file)
    assert not cache_file.exists() and not views_dir(cache_file).exists()


def test_no_cache_rm_comes_between_the_plain_and_the_views_commit(data, tmp_path, monkeypatch):
    import featx._faults
    from featx.errors import CacheBusyError

    cache_file, tried = tmp_path / "c.h5", []

    def remove_midway():  # at the views cache's commit: the plain one is done
        if "views" in str(tried) or not views_dir(cache_file).exists():
            return
        with pytest.raises(CacheBusyError):
            delete_cache(cache_file)
        tried.append("views")

    monkeypatch.setitem(featx._faults.HOOKS, "index-written", remove_midway)
    dataset = scan_dataset(data)
    report = embed_into_cache(dataset, CONFIG, cache_file, RUN, extractor=StandInBackbone(), views_run=lambda: (
        update_views(cache_file, dataset.root, CONFIG, ViewRecipe(1, "flip"), RUN, extractor=StandInBackbone())))
    assert tried == ["views"] and cache_file.exists() and report.views.embedded == 8
    assert len(load_views(cache_file)) == 8


def test_a_views_cache_is_not_read_as_features(data, tmp_path):
    cache_file = tmp_path / "c.h5"
    _embed(data, cache_file, recipe=ViewRecipe(2, "flip"))
    [views] = views_caches(cache_file)
    with pytest.raises(CacheError, match=r"holds augmented views of the cache c\.h5; give that cache"):
        load_features(views)  # inspect would call each image's views duplicates, a head would train on views


# -- heads trained with views ------------------------------------------------------------------

@pytest.fixture
def embedded(tmp_path):
    data = make_class_folder(tmp_path / "data", per_class=10, size=(40, 32))
    _embed(data, tmp_path / "c.h5", recipe=ViewRecipe(3, "crop,jitter"))
    return tmp_path / "c.h5"


def test_a_head_trains_on_the_views_of_its_training_images_only_and_is_scored_on_plain_vectors(embedded):
    plain = fit_head(embedded, "logreg", seed=1)
    head = fit_head(embedded, "logreg", seed=1, views=True)
    train_ids, test_ids = set(head.split["train"]), set(head.split["test"])
    assert head.split == plain.split  # views never move an image across the split
    assert head.views["rows"] == 3 * len(train_ids) and head.views["images"] == len(train_ids)
    assert head.metrics["test"]["n"] == plain.metrics["test"]["n"] == len(test_ids)  # plain test vectors
    features, views = load_features(embedded), load_views(embedded)
    rows = np.flatnonzero(np.isin(features.ids, sorted(train_ids)))
    X, y, used = with_views(features, rows, views)
    owners = views.image_ids[views.rows_of(features.ids[rows])[0]]
    assert set(owners) == train_ids and not set(owners) & test_ids
    assert len(X) == len(y) == 4 * len(rows)
    label_of = dict(zip(features.ids, features.y))
    assert np.array_equal(y[len(rows):], [label_of[i] for i in owners])  # a view has its image's label
    assert not np.allclose(head.estimator.predict_proba(features.X[:5]), plain.estimator.predict_proba(features.X[:5]))


def test_the_head_records_its_views_and_keeps_them_when_saved(embedded, tmp_path):
    head = fit_head(embedded, "logreg", views=True, augment="crop,jitter")
    loaded = load_head(head.save(tmp_path / "h"))
    assert loaded.views == head.views and loaded.views["views_per_image"] == 3
    assert json.loads((tmp_path / "h" / "head.json").read_text())["views"]["augment"] == "crop,jitter"
    assert load_head(fit_head(embedded, "logreg").save(tmp_path / "plain")).views == {}


def test_compare_ranks_every_head_with_and_without_views_and_cross_validates_per_fold(embedded):
    rows = compare_heads([embedded], ["logreg", "knn"], views=True)
    assert sorted((r["head"], r["views"]) for r in rows) == [("knn", 0), ("knn", 3), ("logreg", 0), ("logreg", 3)]
    assert len({r["n"] for r in rows}) == 1  # the same plain test images for every row
    folds = compare_heads([embedded], ["logreg"], views=True, cv=3)
    assert sorted(r["views"] for r in folds) == [0, 3] and all(r["folds"] == 3 for r in folds)


def test_asking_for_views_that_are_not_there_is_one_clear_error(data, tmp_path):
    dataset = scan_dataset(data)
    embed_into_cache(dataset, CONFIG, tmp_path / "c.h5", RUN, extractor=StandInBackbone())
    with pytest.raises(CacheNotFoundError, match="has no augmented views; embed them with 'featx embed --views K"):
        fit_head(tmp_path / "c.h5", "logreg", views=True)
    with pytest.raises(TypeError, match="The 'views' parameter must be True, False or Views; got 3"):
        fit_head(tmp_path / "c.h5", "logreg", views=3)
    with pytest.raises(ValueError, match="The 'augment' parameter must name one or more"):
        fit_head(tmp_path / "c.h5", "logreg", views=True, augment="rotate")
    with pytest.raises(ValueError, match="The 'augment' parameter names the recipe of the cached views to train on; "
                                         "ask for views too"):
        fit_head(tmp_path / "c.h5", "logreg", augment="crop")
    assert issubclass(CacheNotFoundError, FeatxError) and issubclass(CacheNotFoundError, FileNotFoundError)


def test_the_python_api_names_the_view_options():
    import inspect

    parameters = inspect.signature(featx.embed).parameters
    assert parameters["views"].default == 0 and parameters["augment"].default == ViewRecipe().augment
    assert "views" in inspect.signature(fit_head).parameters and "views" in inspect.signature(compare_heads).parameters
    assert featx.load_views is load_views


def test_a_head_that_validates_while_it_trains_validates_on_plain_images_whose_views_it_never_sees(embedded):
    from featx.heads.augmented import fit_inputs_with_views
    from featx.heads.keras_head import KerasHead

    features, views = load_features(embedded), load_views(embedded)
    rows = np.arange(len(features))
    X, y, kwargs, used = fit_inputs_with_views(features, rows, views, KerasHead(validation_fraction=0.2), seed=0)
    X_val, y_val = kwargs["validation_data"]
    validation = [i for i in rows if any(np.array_equal(features.X[i], x) for x in X_val)]
    assert len(validation) == len(X_val) == 4  # a stratified fifth of the 20 images, plain vectors
    assert used["images"] == len(rows) - 4 and len(X) == 4 * (len(rows) - 4)
    val_views = views.X[views.rows_of(features.ids[validation])[0]]
    assert not any(np.array_equal(v, x) for v in val_views for x in X)  # their views are not trained on
    head = KerasHead(validation_fraction=0.2)
    one_dog = np.concatenate([np.flatnonzero(features.y == 0)[:2], np.flatnonzero(features.y == 1)[:1]])
    fit_inputs_with_views(features, one_dog, views, head, seed=0)  # a class of one image: nothing to hold out
    assert head.validation_fraction is None  # so it watches its training loss, not views of its own images


def test_views_of_a_dataset_in_an_object_store(tmp_path):
    fsspec = pytest.importorskip("fsspec", reason='the ray extra: pip install "featx[ray]"')

    data = make_class_folder(tmp_path / "data", per_class=2, size=(40, 32))
    memory, url = fsspec.filesystem("memory"), f"memory://views-{tmp_path.name}/data"
    for path in data.rglob("*.png"):
        memory.pipe(f"/views-{tmp_path.name}/data/{path.relative_to(data).as_posix()}", path.read_bytes())
    try:
        _, remote = _embed(url, tmp_path / "remote.h5")
        _embed(data, tmp_path / "local.h5")
    finally:
        memory.rm(f"/views-{tmp_path.name}", recursive=True)
    assert (remote.images, remote.embedded) == (4, 8)
    a, b = load_views(tmp_path / "remote.h5"), load_views(tmp_path / "local.h5")
    order = lambda v: np.lexsort((v.view, v.image_ids.astype(str)))
    assert np.array_equal(a.X[order(a)], b.X[order(b)])  # the same bytes: the same views, wherever they live


def test_one_embed_with_views_builds_the_backbone_once_and_a_rerun_builds_none(tmp_path, monkeypatch):
    from featx.engine.run import update_cache

    built = []

    class CountedBackbone(StandInBackbone):
        def __init__(self, config, batch_size=None, backend=None):
            super().__init__()
            built.append(config.backbone)

    monkeypatch.setattr("featx.engine.extractor.FeatureExtractor", CountedBackbone)
    data = make_class_folder(tmp_path / "data", per_class=2, size=(40, 32))
    options = EmbedOptions("MobileNetV2", weights="none", image_size=32, batch_size=4, workers=2)
    report = update_cache(data, options, cache=tmp_path / "cache", views=ViewRecipe(2, "crop"))
    assert (report.embedded, report.views.embedded, built) == (4, 8, ["MobileNetV2"])  # plain and views: one build
    report = update_cache(data, options, cache=tmp_path / "cache", views=ViewRecipe(2, "crop"))
    assert (report.reused, report.views.reused, len(built)) == (4, 8, 1)  # nothing new: no backbone at all


def test_an_image_changed_since_its_plain_vector_gets_no_views_until_it_is_embedded_again(data, tmp_path):
    from featx.engine.pixels import CHANGED

    dataset = scan_dataset(data)
    embed_into_cache(dataset, CONFIG, tmp_path / "c.h5", RUN, extractor=StandInBackbone())
    changed = data / "cat" / "cat_1.png"
    write_image(changed, size=(40, 32), seed=777)  # other bytes than the plain cache hashed
    report = update_views(tmp_path / "c.h5", dataset.root, CONFIG, CROP_JITTER, RUN, extractor=StandInBackbone())
    assert [(f.path, f.reason) for f in report.failed] == [(str(changed), CHANGED)]
    assert (report.embedded, report.images) == (14, 8)  # never views of other bytes under the old content id
    _, report = _embed(data, tmp_path / "c.h5")  # the plain run sees the change first, then its views are made
    assert (report.failed, report.embedded, report.reused) == ([], 2, 14)


def test_verify_and_compact_of_a_cache_go_through_its_views_too(data, tmp_path):
    from featx.cache.append import compact_cache
    from featx.cache.catalog import cache_files

    cache_file = tmp_path / "cache" / "c.h5"
    cache_file.parent.mkdir()
    _embed(data, cache_file, recipe=ViewRecipe(1, "crop"))
    _embed(data, cache_file, recipe=ViewRecipe(2, "crop"))  # a second run: a second segment
    views_file = views_caches(cache_file)[0]
    assert cache_files(cache_file) == cache_files(cache_file.parent) == [cache_file, views_file]
    assert verify_cache(views_file, rehash=True) == ([], ["a views cache: --rehash checks the image files "
                                                          "through its plain cache"])
    before = load_views(cache_file).X
    assert compact_cache(views_file) == (2, 0)
    assert np.array_equal(load_views(cache_file).X, before) and len(CacheIndex.read(views_file).segments) == 1
