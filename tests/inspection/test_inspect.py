"""featx inspect on planted problems: flipped labels, copies across splits, images of another kind;
the JSON, the manifest (read back as featx embed reads it), the map, and the report in a browser."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest
from typer.testing import CliRunner

import featx
from featx.cache.append import write_cache
from featx.cache.tables import ImageTable, SkipTable, id_column, str_column
from featx.cli import app
from featx.data.layouts import scan_dataset
from featx.errors import MissingDependencyError, OptionError
from featx.features.vectors import Features, load_features
from featx.inspection import KINDS, plot_map, without_findings, write_manifest, write_report
from featx.inspection.duplicates import find_duplicates
from featx.options import EmbedOptions
from tests.imagegen import write_image

CONFIG = EmbedOptions("MobileNetV2", weights="none", image_size=32).resolve()
CLASSES = ("ant", "bee", "cat", "dog")
FLIPPED = (3, 47, 95, 130)  # rows whose label is moved to the next class
LEAKED = (152, 40)  # row 152 (test) is a slightly changed copy of row 40 (train)
CONFLICT = (153, 20)  # row 153 copies row 20 exactly (same content id) under another label
OUTLIERS = (154, 155)  # vectors of another kind, labelled as dogs


def planted(root="/data", unlabelled=False) -> Features:
    """160 vectors of 4 classes (same-class cosine ~0.86), with the problems above planted."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(len(CLASSES), 64)) * 2.5
    y = np.repeat(np.arange(len(CLASSES)), 38)
    X = centres[y] + rng.normal(size=(len(y), 64))
    flipped = y.copy()
    flipped[list(FLIPPED)] = (y[list(FLIPPED)] + 1) % len(CLASSES)
    other = rng.normal(size=64) * 3
    extra = np.stack([X[40] + 0.02 * rng.normal(size=64), X[20], other + rng.normal(size=64),
                      -other + rng.normal(size=64)])
    X = np.vstack([X, extra]).astype(np.float32)
    y = np.concatenate([flipped, [y[40], (y[20] + 1) % len(CLASSES), 3, 3]]).astype(np.int64)
    n = len(X)
    ids = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(n)]
    ids[CONFLICT[0]] = ids[CONFLICT[1]]
    split = np.where(np.arange(n) % 5 == 0, "test", "train").astype(object)
    split[LEAKED[0]], split[LEAKED[1]] = "test", "train"
    split[CONFLICT[0]] = split[CONFLICT[1]]  # a conflict, not a leak
    return Features(X=X, y=np.full(n, -1) if unlabelled else y, classes=() if unlabelled else CLASSES,
                    paths=np.asarray([f"{root}/img{i:03d}.png" for i in range(n)], dtype=object),
                    ids=np.asarray(ids, dtype=object), split=split,
                    config=CONFIG.identity(), fingerprint=CONFIG.fingerprint, sources=CONFIG.sources())


def write_features(features: Features, path, root) -> os.PathLike:
    """A real cache file holding ``features`` (paths relative to ``root``), as embed commits one."""
    first = {i: row for row, i in reversed(list(enumerate(features.ids)))}
    images = ImageTable(path=str_column(os.path.relpath(p, root) for p in features.paths),
                        id=id_column(features.ids), label=features.y.astype(np.int32),
                        split=str_column(features.split), size=np.zeros(len(features), np.int64),
                        mtime_ns=np.zeros(len(features), np.int64))
    attrs = {"fingerprint": CONFIG.fingerprint, "config": json.dumps(CONFIG.identity()), "sources": "{}",
             "backbone": "MobileNetV2", "dataset": str(root), "root": str(root), "layout": "splits",
             "feature_dim": features.feature_dim}
    vectors = [(id_column(first), features.X[list(first.values())])]
    write_cache(path, attrs=attrs, classes=list(features.classes), images=images, skipped=SkipTable.empty(),
                vectors=vectors, feature_dim=features.feature_dim)
    return path


def test_flipped_labels_rank_first_with_the_right_suggestion():
    result = featx.inspect(planted())
    top = result.label_issues[: len(FLIPPED) + 2]
    assert set(FLIPPED) <= {issue.row for issue in top}
    for issue in result.label_issues:
        if issue.row in FLIPPED:
            true = CLASSES[(CLASSES.index(issue.given) - 1) % len(CLASSES)]
            assert issue.suggested == true and issue.score > 0.5
    scores = [issue.score for issue in result.label_issues]
    assert scores == sorted(scores, reverse=True)


def test_copies_across_splits_are_leaks_and_exact_copies_with_two_labels_conflict():
    result = featx.inspect(planted())
    groups = {frozenset(d.rows): d for d in result.duplicates}
    leak, conflict = groups[frozenset(LEAKED)], groups[frozenset(CONFLICT)]
    assert leak.leak and not leak.exact and 0.99 < leak.similarity < 1 and set(leak.splits) == {"train", "test"}
    assert conflict.exact and conflict.conflict and conflict.similarity == 1.0 and len(set(conflict.labels)) == 2
    assert len(result.duplicates) == 2  # nothing else by default: same-class pairs are ~0.86
    assert len(find_duplicates(planted(), threshold=0.8, margin=0.0)) > 2  # plain cosine pairs look-alikes


def test_images_of_another_kind_are_the_outliers():
    result = featx.inspect(planted())
    assert {o.row for o in result.outliers} == set(OUTLIERS)
    assert all(o.label == "dog" and o.score >= 4 for o in result.outliers)


def test_labels_the_vectors_cannot_predict_get_a_warning():
    feats = planted()
    shuffled = replace(feats, y=np.random.default_rng(1).permutation(feats.y))
    assert not any("unreliable" in note for note in featx.inspect(feats).notes)
    assert any("unreliable" in note for note in featx.inspect(shuffled).notes)


def test_unlabelled_vectors_get_duplicates_and_outliers_and_a_note():
    result = featx.inspect(planted(unlabelled=True))
    assert result.label_issues == () and any("no labels" in note for note in result.notes)
    assert {frozenset(d.rows) for d in result.duplicates} >= {frozenset(LEAKED), frozenset(CONFLICT)}
    assert set(OUTLIERS) <= {o.row for o in result.outliers}
    few = planted()
    few = replace(few, y=np.where(np.arange(len(few)) < 140, -1, few.y))  # mostly unlabelled: clusters, not 4 classes
    assert {o.row for o in featx.inspect(few).outliers} == set(OUTLIERS)


def test_records_and_bad_arguments():
    result = featx.inspect(planted())
    data = result.to_dict()
    assert set(data) == {*KINDS, "summary"}
    assert set(data["label_issues"][0]) == {"path", "given", "suggested", "score", "confidence"}
    assert set(data["duplicates"][0]) >= {"paths", "similarity", "splits", "labels"}
    assert set(data["outliers"][0]) == {"path", "label", "score"}
    assert data["summary"]["leaks"] == 1 and data["summary"]["label_conflicts"] == 1
    json.dumps(data)
    with pytest.raises(OptionError, match="The 'threshold' parameter must be"):
        featx.inspect(planted(), threshold=1.5)
    with pytest.raises(OptionError, match="The 'folds' parameter"):
        featx.inspect(planted(), folds=1)
    with pytest.raises(OptionError, match="The 'kind' parameter"):
        result.records("typos")


def test_manifest_leaves_out_findings_and_reads_back_as_a_dataset(tmp_path):
    feats = planted(root=str(tmp_path / "data"))
    result = featx.inspect(feats)
    default = write_manifest(result, tmp_path / "default.csv")  # copies and outliers; label issues stay listed
    names = {os.path.basename(r.path) for r in scan_dataset(default.path).records}
    assert {f"img{r:03d}.png" for r in FLIPPED} <= names and not names & {"img153.png", "img154.png", "img155.png"}
    assert "img020.png" in names and "img040.png" not in names and default.left_out == 4
    written = write_manifest(result, tmp_path / "clean" / "clean.csv", drop=KINDS)
    dataset = scan_dataset(written.path)
    kept = {os.path.basename(r.path) for r in dataset.records}
    assert written.kept == len(dataset.records) == len(feats) - written.left_out
    assert not kept & {f"img{r:03d}.png" for r in (*FLIPPED, *OUTLIERS, *CONFLICT, LEAKED[1])}
    assert "img152.png" in kept  # of a leaked pair, the test copy stays and the train copy goes
    assert dataset.classes == CLASSES and {r.split for r in dataset.records} == {"train", "test"}
    assert written.path.read_text().splitlines()[:2] == ["path,label,split", "../data/img000.png,ant,test"]
    clean = without_findings(result, drop=KINDS)
    assert sorted(os.path.basename(p) for p in clean.paths) == sorted(kept) and clean.classes == CLASSES
    assert featx.fit_head(clean, "logreg").metrics["test"]["accuracy"] == 1.0
    only = write_manifest(result, tmp_path / "only.csv", drop=["outliers"])
    assert only.left_out == len(OUTLIERS)
    with pytest.raises(OptionError, match="'drop' parameter takes label_issues"):
        write_manifest(result, tmp_path / "x.csv", drop=["typo"])


@pytest.fixture
def dataset_cache(tmp_path):
    """The planted vectors in a real cache whose paths are real PNG files."""
    root = tmp_path / "data"
    feats = planted(root=str(root))
    for row, path in enumerate(feats.paths):
        write_image(path, size=(24, 24), seed=row)
    return write_features(feats, tmp_path / "cache" / "planted--MobileNetV2--0.h5", root)


def test_cli_json_manifest_map_and_report(dataset_cache, tmp_path, monkeypatch):
    monkeypatch.setenv("FEATX_CACHE_DIR", str(dataset_cache.parent))
    out = tmp_path / "out"
    done = CliRunner().invoke(app, ["inspect", "--json", "--write-manifest", str(out / "clean.csv"),
                                              "--drop", "outliers", "--map", str(out / "map.png"),
                                              "--report", str(out / "report.html")])
    assert done.exit_code == 0, (done.stdout, done.stderr)
    data = json.loads(done.stdout)
    assert {issue["path"].rsplit("/", 1)[1] for issue in data["label_issues"][:len(FLIPPED) + 2]} >= \
        {f"img{r:03d}.png" for r in FLIPPED}
    assert data["summary"]["leaks"] == 1 and data["summary"]["outliers"] == 2
    assert data["files"]["manifest"].endswith("clean.csv")
    assert len(scan_dataset(out / "clean.csv").records) == len(load_features(dataset_cache)) - len(OUTLIERS)
    assert (out / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = (out / "report.html").read_text()
    assert "src='../data/img003.png'" in html and "data:image/png;base64," in html


def test_cli_prints_findings_and_names_flags_in_errors(dataset_cache):
    runner = CliRunner()
    done = runner.invoke(app, ["inspect", str(dataset_cache)])
    assert done.exit_code == 0, done.stderr
    assert "156 images (156 labelled, 4 classes)" in done.stdout
    assert "likely label errors" in done.stdout and "LEAK" in done.stdout and "CONFLICT" in done.stdout
    assert "outliers 2" in done.stdout
    assert "held-out accuracy of the head that scores the labels: 95.5%" in done.stdout  # 7 of 156 disbelieved
    relabel = runner.invoke(app, ["inspect", str(dataset_cache), "--write-manifest",
                                  str(dataset_cache.parent.parent / "fixed.csv"), "--relabel"])
    assert relabel.exit_code == 0 and "label issues relabelled" in relabel.stderr
    fixed = (dataset_cache.parent.parent / "fixed.csv").read_text()
    assert f"img{FLIPPED[0]:03d}.png,{CLASSES[(int(FLIPPED[0]) // 38) % len(CLASSES)]}," in fixed
    bad = runner.invoke(app, ["inspect", str(dataset_cache), "--threshold", "2"])
    assert bad.exit_code == 2 and "error: --threshold must be a cosine similarity" in bad.stderr
    missing = runner.invoke(app, ["inspect", str(dataset_cache.parent / "nope")])
    assert missing.exit_code == 1 and "CACHE" in missing.stderr
    typo = runner.invoke(app, ["inspect", str(dataset_cache), "--write-manifest", "x.csv", "--drop", "ouch"])
    assert typo.exit_code == 2 and "--drop takes" in typo.stderr


def test_map_marks_findings(tmp_path):
    result = featx.inspect(planted())
    assert plot_map(result, tmp_path / "map.png", method="pca").stat().st_size > 10_000
    with pytest.raises(OptionError, match="'method' parameter"):
        plot_map(result, tmp_path / "x.png", method="tsne")


def test_umap_map_without_umap_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # importing it fails, as when it is not installed
    result = featx.inspect(planted())
    with pytest.raises(MissingDependencyError, match=r"pip install 'featx\[umap\]'"):
        plot_map(result, tmp_path / "x.png", method="umap")
    assert plot_map(result, tmp_path / "auto.png").exists()  # "auto" falls back to PCA


@pytest.mark.integration
def test_inspect_never_imports_tensorflow(dataset_cache):
    code = ("import sys; from typer.testing import CliRunner; from featx.cli import app; "
            f"done = CliRunner().invoke(app, ['inspect', {str(dataset_cache)!r}, '--json']); "
            "assert done.exit_code == 0, done.output; assert 'tensorflow' not in sys.modules, 'tensorflow imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def _chromium() -> str | None:
    found = next((shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome") if shutil.which(n)), None)
    if found is None and os.environ.get("CI") == "true":
        pytest.fail("CI must have Chromium for the report's browser test (.ci/run installs it)")
    if found is None:
        pytest.skip("Chromium is not installed")
    return found


def _rendered(browser: str, page) -> str:
    done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--allow-file-access-from-files",
                           "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.integration
def test_report_shows_every_thumbnail_in_a_real_browser(dataset_cache, tmp_path):
    browser = _chromium()
    page = write_report(featx.inspect(dataset_cache), tmp_path / "report" / "report.html", method="pca")
    dom = _rendered(browser, page)
    assert dom.count("class=\"thumb\"") >= len(FLIPPED) + 4 + len(OUTLIERS)
    assert "<table id=\"summary\">" in dom
    moved = tmp_path / "data" / "img003.png"
    moved.rename(tmp_path / "elsewhere.png")  # the check sees a broken thumbnail when there is one
    assert dom.count("thumb missing") == 0 and _rendered(browser, page).count("thumb missing") == 1


@pytest.mark.integration
def test_embed_inspect_and_embed_the_clean_manifest(tmp_path, cache_dir):
    """The real path: featx embed, featx inspect on the latest cache, featx embed of its manifest."""
    from tests.imagegen import make_class_folder

    data = make_class_folder(tmp_path / "data", classes=("cat", "dog"), per_class=4, size=(40, 40),
                             splits=("train", "test"))
    shutil.copy(data / "test" / "cat" / "cat_0.png", data / "train" / "cat" / "copy.png")  # a leak
    embed = ["--backbone", "MobileNetV2", "--weights", "none", "--image-size", "32", "--quiet"]
    runner = CliRunner()
    assert runner.invoke(app, ["embed", str(data), *embed]).exit_code == 0
    done = runner.invoke(app, ["inspect", "--json", "--write-manifest", str(tmp_path / "clean.csv"),
                               "--drop", "duplicates"])
    assert done.exit_code == 0, done.stderr
    found = json.loads(done.stdout)
    assert len(found["duplicates"]) == 1  # centred vectors: random-weight features do not all look alike
    leak = found["duplicates"][0]
    assert leak["exact"] and leak["leak"] and sorted(leak["splits"]) == ["test", "train"]
    assert found["summary"]["images"] == 17
    again = runner.invoke(app, ["embed", str(tmp_path / "clean.csv"), *embed, "--json"])
    assert again.exit_code == 0, again.stderr
    assert json.loads(again.stdout)["images"] == 16  # the train copy left out, the test image kept
