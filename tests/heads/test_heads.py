"""Heads on synthetic cached vectors: every registered head, splits, parameters, evaluation,
comparison, and safe saving and loading (tampered and foreign files refused)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil

import numpy as np
import pytest
import skops.io
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.utils.estimator_checks import parametrize_with_checks

from featx.errors import FeatxError, OptionError
from featx.features.vectors import Features
from featx.heads import (
    HEADS,
    KerasHead,
    compare_heads,
    evaluate_head,
    fit_head,
    list_heads,
    load_head,
    make_head,
    split_features,
)
from featx.heads.headfile import content_checksum
from featx.heads.params import params_per_head, parse_params, parse_value
from featx.heads.plots import plot_confusion, plot_history
from featx.options import EmbedOptions

# Small, quick settings per head for tiny data; the defaults are for real datasets.
QUICK = {"keras": {"units": 16, "epochs": 30, "learning_rate": 0.01}, "svm": {"calibration_cv": 3}}
CONFIG = EmbedOptions("MobileNetV2", weights="none", image_size=32).resolve()


# --- scikit-learn's estimator contract, for every registered head ----------------------------------

# Tiny settings, so that the whole check suite runs in well under a minute; the Keras head's high
# learning rate reaches in 5 epochs the accuracy the checks demand.
CONTRACT = {"keras": {"units": 8, "epochs": 5, "learning_rate": 0.05, "random_state": 0},
            "svm": {"calibration_cv": 2, "random_state": 0}, "sgd": {"random_state": 0}}  # SGD shuffles: seeded
_PIPELINE = {
    # A Pipeline fits the estimators it was given in place: scikit-learn's own Pipeline does the same.
    "check_estimators_overwrite_params": "a Pipeline fits its steps in place, as scikit-learn's own does",
    "check_dont_overwrite_parameters": "a Pipeline fits its steps in place, as scikit-learn's own does",
}
_CALIBRATED = {
    **_PIPELINE,
    "check_supervised_y_2d": "CalibratedClassifierCV(ensemble=False) fails on a column-vector y in "
                             "scikit-learn's cross_val_predict (IndexError), before featx is involved",
}


def _trains_with_keras(name: str) -> bool:
    return isinstance(make_head(name), KerasHead)


def _contract_estimators(keras: bool):
    """Every registry entry's estimator as make_head builds it, and the svm's other estimators (liblinear's
    exact solver, the approximate RBF kernel)."""
    built = [make_head(name, **CONTRACT.get(name, {})) for name in HEADS
             if HEADS[name].context is None and _trains_with_keras(name) == keras]  # zeroshot: tests/heads/test_zeroshot
    return built if keras else built + [make_head("svm", C=1.0, **CONTRACT["svm"]),
                                        make_head("svm", kernel="rbf", n_components=20, **CONTRACT["svm"])]


def _expected_failures(estimator) -> dict[str, str]:
    if not isinstance(estimator, Pipeline):
        return {}
    return _CALIBRATED if type(estimator[-1]).__name__ == "CalibratedClassifierCV" else _PIPELINE


@parametrize_with_checks(_contract_estimators(keras=False), expected_failed_checks=_expected_failures)
def test_every_head_follows_the_scikit_learn_estimator_contract(estimator, check):
    check(estimator)


@pytest.mark.integration
@parametrize_with_checks(_contract_estimators(keras=True), expected_failed_checks=_expected_failures)
def test_every_keras_trained_head_follows_the_scikit_learn_estimator_contract(estimator, check):
    check(estimator)


# The heads by name; those that train with Keras (importing TensorFlow) are integration tests.
HEAD_NAMES = [pytest.param(name, marks=pytest.mark.integration) if _trains_with_keras(name) else name
              for name in list_heads() if HEADS[name].context is None]  # fitted from blobs: no text tower


def blob_features(n=150, classes=("ant", "bee", "cat"), dim=16, split=None, seed=0, std=1.0,
                  config=CONFIG, unlabelled=0) -> Features:
    X, y = make_blobs(n, centers=len(classes), n_features=dim, cluster_std=std, random_state=seed)
    y = y.astype(np.int64)
    if unlabelled:
        y[:unlabelled] = -1
    ids = np.asarray([hashlib.sha256(f"{seed}-{i}".encode()).hexdigest() for i in range(n)], dtype=object)
    return Features(
        X=X.astype(np.float32), y=y, classes=tuple(classes),
        paths=np.asarray([f"/data/img{i}.png" for i in range(n)], dtype=object), ids=ids,
        split=np.asarray(split if split is not None else [""] * n, dtype=object),
        config=config.identity(), fingerprint=config.fingerprint, sources=config.sources(),
    )


@pytest.fixture(scope="module")
def blobs():
    return blob_features()


@pytest.mark.parametrize("name", HEAD_NAMES)
def test_every_head_learns_separable_blobs(name, blobs):
    head = fit_head(blobs, name, **QUICK.get(name, {}))
    assert head.kind == name and head.classes == ("ant", "bee", "cat")
    assert head.metrics["test"]["accuracy"] >= 0.95 and head.metrics["test"]["n"] == 30
    assert head.metrics["train"]["n"] + head.metrics.get("val", {}).get("n", 0) == 120
    proba = head.predict_proba(blobs.X[:5])
    assert proba.shape == (5, 3) and np.allclose(proba.sum(axis=1), 1)
    assert set(head.predict(blobs.X)) <= set(head.classes)
    assert head.fingerprint == CONFIG.fingerprint and head.config == CONFIG.identity()
    assert head.fit_seconds > 0 and head.summary().startswith("test accuracy")


@pytest.mark.parametrize("name", HEAD_NAMES)
def test_saved_head_loads_back_identical(name, blobs, tmp_path):
    head = fit_head(blobs, name, **QUICK.get(name, {}))
    path = head.save(tmp_path / "my-head")
    loaded = load_head(path)
    assert np.array_equal(loaded.predict_proba(blobs.X), head.predict_proba(blobs.X))
    for field in ("kind", "classes", "config", "sources", "fingerprint", "feature_dim", "split", "metrics"):
        assert getattr(loaded, field) == getattr(head, field), field
    assert loaded.params == json.loads(json.dumps(head.params))
    assert loaded.featx_version and loaded.path == path
    assert loaded.name == head.name == f"{name}-MobileNetV2"  # saving records a path; it renames nothing
    head.save(path)  # saving over a head replaces it
    assert sorted(p.name for p in path.iterdir()) == ["estimator.skops", "head.json"]


def test_default_save_path_never_overwrites(blobs, cache_dir):
    first = fit_head(blobs, "knn").save()
    head = fit_head(blobs, "knn")
    second = head.save()
    assert first == cache_dir / "heads" / "knn-MobileNetV2"
    assert second == cache_dir / "heads" / "knn-MobileNetV2-2"
    assert head.path == second and head.name == "knn-MobileNetV2"


def test_a_saved_head_loads_by_name(blobs, cache_dir, tmp_path):
    path = fit_head(blobs, "logreg").save()
    assert load_head(path.name).path == path  # <cache folder>/heads/<name>, as the CLI takes it
    elsewhere = fit_head(blobs, "knn").save(tmp_path / "mine" / "heads" / "knn")
    assert load_head("knn", cache_dir=tmp_path / "mine").path == elsewhere
    with pytest.raises(FileNotFoundError, match="nothing-here does not exist; .*or the name of one in"):
        load_head("nothing-here")


@pytest.mark.parametrize("name", ["logreg", "svm", "knn"])
def test_scikit_learn_heads_work_in_cross_val_score(name, blobs):
    head = make_head(name, **QUICK.get(name, {}))
    scores = cross_val_score(clone(head), blobs.X, blobs.y, cv=3)
    assert scores.mean() > 0.95


def test_heads_are_plain_scikit_learn_pipelines(blobs):
    logreg = fit_head(blobs, "logreg").estimator
    assert isinstance(logreg, Pipeline) and [type(s).__name__ for _, s in logreg.steps] == [
        "StandardScaler", "LogisticRegression"]
    assert logreg[-1].coef_.shape == (3, 16) and logreg[0].mean_.shape == (16,)
    svm = fit_head(blobs, "svm", calibration_cv=3).estimator
    assert [type(s).__name__ for _, s in svm.steps] == ["StandardScaler", "CalibratedClassifierCV"]
    assert svm[-1].calibrated_classifiers_[0].estimator.coef_.shape == (3, 16)
    knn = fit_head(blobs, "knn").estimator
    assert [type(s).__name__ for _, s in knn.steps] == ["UnitRows", "KNeighborsClassifier"]
    assert knn[-1].metric == "cosine"
    assert type(make_head("knn", scale=True)[0]).__name__ == "StandardScaler"


@pytest.mark.parametrize("scale", [1e-9, 1.0, 1e6])
def test_knn_is_right_whatever_the_norm_of_float32_vectors(scale, tmp_path):
    # random backbone weights give float32 vectors of norm ~1e-9, which float32 cosine counted as
    # zero vectors: knn predicted one class for all (chance)
    blobs = blob_features(n=300, classes=("a", "b", "c", "d", "e"), seed=3)
    small = dataclasses.replace(blobs, X=(blobs.X.astype(np.float64) * scale).astype(np.float32))
    assert np.linalg.norm(small.X, axis=1).max() < 1e-6 or scale >= 1.0
    head = fit_head(small, "knn")
    assert head.metrics["test"]["accuracy"] >= 0.95
    reloaded = load_head(head.save(tmp_path / "knn"))
    assert (reloaded.predict(small.X) == head.predict(small.X)).all()


def test_grid_search_over_a_head(blobs):
    search = GridSearchCV(make_head("logreg"), {"logisticregression__C": [0.01, 1.0]}, cv=3)
    search.fit(blobs.X, blobs.y)
    assert search.best_params_["logisticregression__C"] in (0.01, 1.0) and search.best_score_ > 0.95


def test_head_parameters_reach_the_estimator(blobs):
    head = fit_head(blobs, "svm", alpha=1e-3, epochs=7, calibration_cv=3)
    sgd = head.estimator[-1].estimator
    assert (type(sgd).__name__, sgd.loss, sgd.alpha, sgd.max_iter, sgd.average) == ("SGDClassifier", "hinge", 1e-3, 7, True)
    assert head.params == {"alpha": 1e-3, "epochs": 7, "calibration_cv": 3, "random_state": 0}
    exact = fit_head(blobs, "svm", C=10, calibration_cv=3).estimator[-1].estimator
    assert type(exact).__name__ == "LinearSVC" and exact.C == 10  # liblinear's exact solver
    rbf = fit_head(blobs, "svm", kernel="rbf", gamma=0.5, n_components=40, calibration_cv=3)
    assert [type(s).__name__ for _, s in rbf.estimator.steps] == ["StandardScaler", "Nystroem", "CalibratedClassifierCV"]
    assert (rbf.estimator[1].gamma, rbf.estimator[1].n_components) == (0.5, 40)
    assert rbf.metrics["test"]["accuracy"] >= 0.95
    assert make_head("svm", kernel="rbf")[1].gamma is None  # 'scale' on standardised vectors: 1/n_features
    with pytest.raises(OptionError, match="gamma='scale' needs standardised vectors"):
        make_head("svm", kernel="rbf", scale=False)
    assert fit_head(blobs, "logreg", seed=7).params["random_state"] == 7


def test_a_head_estimated_to_take_long_says_so_before_it_starts(blobs, monkeypatch):
    import featx.heads.cost as cost
    from featx.errors import SlowFitWarning
    from featx.heads import get_head_spec

    # The estimates grow with the vectors' size as the solvers do.
    svm = get_head_spec("svm")
    assert svm.estimate_seconds(100_000, 2048, 10, {}) > 9 * svm.estimate_seconds(10_000, 2048, 10, {})
    assert svm.estimate_seconds(10_000, 2048, 10, {"C": 1.0}) > svm.estimate_seconds(10_000, 2048, 10, {})
    knn = get_head_spec("knn")
    # knn scores its test rows against every training row (n^2), its train rows on a sample of at most 10,000
    assert knn.estimate_seconds(100_000, 2048, 10, {}) > 25 * knn.estimate_seconds(10_000, 2048, 10, {})
    notes = []
    fit_head(blobs, "logreg", note=notes.append)
    assert notes == []  # 120 vectors: nothing to say
    monkeypatch.setattr(cost, "LONG_FIT_SECONDS", 0.0)
    fit_head(blobs, "logreg", note=notes.append)
    assert len(notes) == 1 and notes[0].startswith("the logreg head on 120 x 16 vectors may take about 0 s")
    with pytest.warns(SlowFitWarning, match="the knn head on 120 x 16 vectors may take"):
        fit_head(blobs, "knn")


def test_unknown_head_and_parameters_are_named(blobs):
    with pytest.raises(OptionError, match=r"unknown head 'svn'.*logreg, svm, sgd, knn, keras.*'svm'"):
        fit_head(blobs, "svn")
    with pytest.raises(OptionError, match=r"unknown parameter 'unit' for the keras head; allowed: units, .*'units'"):
        fit_head(blobs, "keras", unit=3)
    with pytest.raises(OptionError, match=r"'kernel' parameter of the svm head must be one of 'linear', 'rbf'"):
        make_head("svm", kernel="poly")
    with pytest.raises(OptionError, match="knn head does not take class weights; drop the 'class_weight' parameter"):
        fit_head(blobs, "knn", class_weight="balanced")
    with pytest.raises(OptionError, match="The 'class_weight' parameter must be 'balanced' or 'none'; got 'heavy'"):
        fit_head(blobs, "logreg", class_weight="heavy")
    assert "class_weight" not in fit_head(blobs, "logreg", class_weight="none").params
    with pytest.raises(FeatxError, match="logreg head: .*'C' parameter"):
        fit_head(blobs, "logreg", C=-1.0)


@pytest.mark.parametrize("text, value", [
    ("512", 512), ("0.5", 0.5), ("1e-3", 0.001), ("true", True), ("False", False), ("none", None),
    ("null", None), ("balanced", "balanced"), ("rbf", "rbf"), ("-2", -2),
])
def test_param_values_are_parsed(text, value):
    assert parse_value(text) == value and type(parse_value(text)) is type(value)


def test_param_syntax_and_per_head_params():
    assert parse_params(["units=512", "dropout=0.5"]) == {"units": 512, "dropout": 0.5}
    with pytest.raises(OptionError, match="key=value"):
        parse_params(["units"])
    per_head = params_per_head(["svm.C=10", "class_weight=balanced"], ["svm", "knn", "logreg"])
    assert per_head == {"svm": {"C": 10, "class_weight": "balanced"}, "knn": {}, "logreg": {"class_weight": "balanced"}}
    with pytest.raises(OptionError, match="none of the compared heads"):
        params_per_head(["units=3"], ["svm"])
    with pytest.raises(OptionError, match="unknown parameter 'gama'"):
        params_per_head(["svm.gama=3"], ["svm"])


def test_balanced_class_weight_helps_the_rare_class():
    X, y = make_blobs([380, 20], centers=[[0, 0], [1.5, 1.5]], cluster_std=1.0, random_state=0)
    features = blob_features(n=400, classes=("common", "rare"), dim=2)
    features = Features(**{**features.__dict__, "X": X.astype(np.float32), "y": y.astype(np.int64)})
    plain = fit_head(features, "logreg", test_size=0.5)
    balanced = fit_head(features, "logreg", test_size=0.5, class_weight="balanced")
    assert balanced.estimator[-1].class_weight == "balanced"
    rare_plain, rare_balanced = (evaluate_head(h, features).per_class[1]["recall"] for h in (plain, balanced))
    assert rare_balanced > rare_plain


# --- splits --------------------------------------------------------------------------------------


def _ids(features, rows):
    return sorted(features.ids[rows])


def test_holdout_is_stratified_deterministic_and_independent_of_row_order(blobs):
    split = split_features(blobs, test_size=0.2, seed=0)
    assert split.method == "holdout" and len(split.test) == 30 and len(split.val) == 0
    assert np.bincount(blobs.y[split.test]).tolist() == [10, 10, 10]
    assert not set(split.train) & set(split.test)
    again = split_features(blobs, test_size=0.2, seed=0)
    assert _ids(blobs, again.test) == _ids(blobs, split.test)
    assert _ids(blobs, split_features(blobs, seed=1).test) != _ids(blobs, split.test)
    shuffled = blobs.subset(np.random.default_rng(0).permutation(len(blobs)))
    assert _ids(shuffled, split_features(shuffled, seed=0).test) == _ids(blobs, split.test)


def test_cache_split_is_used_and_recorded():
    split = np.array(["train"] * 90 + ["val"] * 30 + ["test"] * 30, dtype=object)
    features = blob_features(split=split)
    head = fit_head(features, "logreg")
    assert head.split["method"] == "cache"
    for name in ("train", "val", "test"):
        assert sorted(head.split[name]) == sorted(features.ids[split == name])
        assert head.metrics[name]["n"] == (split == name).sum()


def test_a_cache_without_test_split_gets_a_holdout_from_train():
    features = blob_features(split=np.array(["train"] * 120 + ["val"] * 30, dtype=object))
    split = split_features(features, test_size=0.25, seed=0)
    assert split.method == "cache+holdout" and len(split.test) == 30 and len(split.train) == 90
    assert set(features.split[split.val]) == {"val"} and set(features.split[split.test]) == {"train"}


@pytest.mark.integration
def test_unlabelled_rows_are_never_used():
    features = blob_features(unlabelled=30)
    split = split_features(features, test_size=0.2, seed=0, val_fraction=0.1)
    used = np.concatenate([split.train, split.val, split.test])
    assert len(used) == 120 and (features.y[used] >= 0).all()
    head = fit_head(features, "keras", **QUICK["keras"])
    assert sum(len(head.split[s]) for s in ("train", "val", "test")) == 120


@pytest.mark.integration
def test_keras_head_validates_on_a_carved_stratified_part_of_train(blobs):
    keras_head = fit_head(blobs, "keras", **QUICK["keras"])
    assert len(keras_head.split["val"]) == 12 and keras_head.metrics["val"]["n"] == 12
    assert keras_head.estimator.monitor_ == "val_loss"
    assert not set(keras_head.split["val"]) & set(keras_head.split["train"] + keras_head.split["test"])
    assert fit_head(blobs, "logreg").split["val"] == []  # heads that do not validate keep all of train


def test_test_size_zero_trains_on_everything(blobs):
    head = fit_head(blobs, "logreg", test_size=0)
    assert head.metrics["train"]["n"] == 150 and "test" not in head.metrics
    with pytest.raises(FeatxError, match="no 'test' images; set the 'split' parameter to train or all"):
        evaluate_head(head, blobs)


def test_splits_that_cannot_be_made_say_why():
    tiny = blob_features(n=5, classes=("a", "b"))
    with pytest.raises(FeatxError, match="every class needs 2 images"):
        fit_head(tiny, "logreg", test_size=0.2)
    with pytest.raises(OptionError, match="The 'test_size' parameter must be at least 0 and below 1"):
        fit_head(tiny, "logreg", test_size=1.5)
    with pytest.raises(FeatxError, match="no labelled images"):
        fit_head(blob_features(unlabelled=150), "logreg")
    one_class = blob_features(split=np.array(["train"] * 150, dtype=object))
    one_class = Features(**{**one_class.__dict__, "y": np.zeros(150, dtype=np.int64)})
    with pytest.raises(FeatxError, match="single class"):
        fit_head(one_class, "logreg", test_size=0)


# --- evaluation, fingerprints, comparison ----------------------------------------------------------


def test_evaluation_reports_every_score():
    features = blob_features(dim=2, std=4.0, seed=3)  # overlapping: some mistakes
    head = fit_head(features, "logreg")
    result = evaluate_head(head, features, top_k=2, misclassified=3)
    assert result.n == 30 and result.top_k == 2 and result.missing == 0
    assert np.sum(result.confusion) == 30 and np.trace(result.confusion) == round(result.accuracy * 30)
    assert 0 < result.accuracy < 1 and result.accuracy <= result.top_k_accuracy <= 1
    assert [r["class"] for r in result.per_class] == ["ant", "bee", "cat"]
    assert sum(r["support"] for r in result.per_class) == 30
    assert 0 < len(result.misclassified) <= 3
    confidence = [m["confidence"] for m in result.misclassified]
    assert confidence == sorted(confidence, reverse=True)
    assert all(m["true"] != m["predicted"] and m["path"].startswith("/data/") for m in result.misclassified)
    assert evaluate_head(head, features, split="all").n == 150
    with pytest.raises(OptionError, match="The 'split' parameter must be one of train, val, test, all"):
        evaluate_head(head, features, split="holdout")


def test_classes_are_matched_by_name(blobs):
    head = fit_head(blobs, "logreg", test_size=0)
    reordered = Features(**{**blobs.__dict__, "classes": ("cat", "bee", "ant"), "y": 2 - blobs.y})
    assert evaluate_head(head, reordered, split="all").accuracy == evaluate_head(head, blobs, split="all").accuracy
    foreign = Features(**{**blobs.__dict__, "classes": ("ant", "bee", "dog")})
    with pytest.raises(FeatxError, match="classes head .* does not know: dog"):
        evaluate_head(head, foreign, split="all")


@pytest.mark.parametrize("change, message", [
    ({"image_size": 64}, "input_size 32 vs 64"),
    ({"pooling": "max"}, "pooling 'avg' vs 'max'"),
    ({"seed": 1}, "weights 'none:seed=0' vs 'none:seed=1'"),
])
def test_features_of_another_backbone_configuration_are_refused(blobs, change, message):
    head = fit_head(blobs, "logreg")
    other = blob_features(config=EmbedOptions("MobileNetV2", **{"weights": "none", "image_size": 32, **change}).resolve())
    with pytest.raises(FeatxError, match=f"another backbone configuration.*{message}"):
        evaluate_head(head, other)


def test_vectors_of_the_wrong_width_are_refused(blobs):
    head = fit_head(blobs, "knn")
    with pytest.raises(FeatxError, match="takes 16-dimensional feature vectors; got an array of shape"):
        head.predict(np.zeros((2, 8)))


def test_compare_ranks_heads_on_the_same_split(blobs):
    permuted = blobs.subset(np.random.default_rng(1).permutation(len(blobs)))  # as another cache's rows
    rows = compare_heads([blobs, permuted], ["logreg", "knn"], params={"knn": {"n_neighbors": 3}})
    assert len(rows) == 4 and {r["head"] for r in rows} == {"logreg", "knn"}
    assert [r["accuracy"] for r in rows] == sorted((r["accuracy"] for r in rows), reverse=True)
    assert all(r["n"] == 30 and r["fit_seconds"] >= 0 and r["backbone"] == "MobileNetV2" for r in rows)
    by_head = {}
    for r in rows:
        by_head.setdefault(r["head"], set()).add(r["accuracy"])
    assert all(len(scores) == 1 for scores in by_head.values())  # same split whatever the row order


def test_compare_with_cross_validation(blobs):
    seen = []
    rows = compare_heads([blobs], ["logreg", "knn"], cv=3, progress=lambda b, h: seen.append((b, h)))
    assert seen == [("MobileNetV2", "logreg"), ("MobileNetV2", "knn")]
    assert all(r["folds"] == 3 and r["n"] == 150 and r["accuracy"] > 0.95 and "accuracy_std" in r for r in rows)
    with pytest.raises(OptionError, match="The 'cv' parameter must be at least 2"):
        compare_heads([blobs], ["logreg"], cv=1)
    with pytest.raises(FeatxError, match="60-fold cross-validation needs at least 60 labelled images of every class.*Lower the 'cv' parameter"):
        compare_heads([blobs], ["logreg"], cv=60)


def test_plots_are_png_files(blobs, tmp_path):
    head = fit_head(blobs, "logreg")
    path = plot_confusion(evaluate_head(head, blobs), tmp_path / "confusion.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = {"loss": [1.0, 0.5, 0.4], "val_loss": [1.1, 0.7, 0.6], "accuracy": [0.5, 0.8, 0.85],
               "val_accuracy": [0.4, 0.7, 0.75]}
    curves = plot_history(history, tmp_path / "curves.png")
    assert curves.read_bytes()[:4] == b"\x89PNG"
    marked = plot_history(history, tmp_path / "marked.png", mark_after=2)  # where fine-tuning took over
    assert marked.read_bytes()[:4] == b"\x89PNG" and marked.read_bytes() != curves.read_bytes()


# --- safe loading --------------------------------------------------------------------------------


@pytest.fixture
def saved(blobs, tmp_path):
    return fit_head(blobs, "logreg").save(tmp_path / "head")


def _rewrite_meta(path, **changes):
    """Change head.json as featx would have written it (its checksum matching)."""
    meta = json.loads((path / "head.json").read_text())
    meta.update(changes)
    (path / "head.json").write_text(json.dumps({**meta, "checksum": content_checksum(meta)}))


def _replace_estimator(path, estimator):
    skops.io.dump(estimator, path / "estimator.skops")
    digest = hashlib.sha256((path / "estimator.skops").read_bytes()).hexdigest()
    _rewrite_meta(path, estimator={"file": "estimator.skops", "sha256": digest})


def test_a_crafted_estimator_with_foreign_types_is_refused(saved, blobs):
    import os

    from sklearn.preprocessing import FunctionTransformer

    evil = make_head("logreg").fit(blobs.X, blobs.y)
    evil.steps.insert(0, ("run", FunctionTransformer(func=os.system)))
    _replace_estimator(saved, evil)  # even with a matching checksum
    with pytest.raises(FeatxError, match="holds types a featx logreg head never contains.*system"):
        load_head(saved)


def test_an_estimator_of_another_kind_is_refused(saved, blobs):
    _replace_estimator(saved, make_head("knn")[-1].fit(blobs.X, blobs.y))  # a bare KNeighborsClassifier
    with pytest.raises(FeatxError, match="does not hold a fitted logreg head"):
        load_head(saved)


def test_modified_bytes_are_refused(saved):
    data = bytearray((saved / "estimator.skops").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (saved / "estimator.skops").write_bytes(bytes(data))
    with pytest.raises(FeatxError, match="modified after the head was saved"):
        load_head(saved)


@pytest.mark.parametrize("content, message", [
    (b"\x80\x04not json", "not a readable featx head file"),
    (b'{"format": "something-else"}', "not a featx head file"),
    (b'{"format": "featx-head", "version": 99}', "format version 99; this featx reads versions 1 to 2"),
    (b'{"format": "featx-head", "version": 1}', "is damaged \\(missing head, params"),
])
def test_foreign_or_damaged_head_json_is_refused(saved, content, message):
    (saved / "head.json").write_bytes(content)
    with pytest.raises(FeatxError, match=message):
        load_head(saved)


def test_a_tampered_configuration_is_refused(saved):
    meta = json.loads((saved / "head.json").read_text())
    _rewrite_meta(saved, config={**meta["config"], "input_size": 64})  # fingerprint left as it was
    with pytest.raises(FeatxError, match="inconsistent"):
        load_head(saved)


def test_not_a_head_folder(tmp_path, saved):
    with pytest.raises(FeatxError, match="does not exist; give a head folder"):
        load_head(tmp_path / "nothing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FeatxError, match="has no head.json"):
        load_head(tmp_path / "empty")
    with pytest.raises(FeatxError, match="is not a featx head folder"):
        fit_head(blob_features(), "knn").save(tmp_path / "empty")
    shutil.copytree(saved, tmp_path / "copy")
    assert load_head(tmp_path / "copy" / "head.json").kind == "logreg"


def test_train_scores_use_a_seeded_sample_of_a_large_training_set(blobs, monkeypatch):
    # knn scores each row against every training row: scoring all of a 100k training set cost minutes
    monkeypatch.setattr("featx.heads.fit.TRAIN_SCORE_ROWS", 50)
    head = fit_head(blobs, "knn", seed=3)
    train = head.metrics["train"]
    assert (train["n"], train["sampled_from"], len(head.split["train"])) == (50, 120, 120)
    assert "sampled_from" not in head.metrics["test"] and head.metrics["test"]["n"] == 30
    assert fit_head(blobs, "knn", seed=3).metrics["train"] == train  # the same sample for the same seed
    monkeypatch.setattr("featx.heads.fit.TRAIN_SCORE_ROWS", 10_000)
    assert "sampled_from" not in fit_head(blobs, "knn", seed=3).metrics["train"]
