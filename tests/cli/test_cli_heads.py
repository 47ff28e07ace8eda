"""The heads commands end to end on tiny generated images (MobileNetV2, random weights, 32 px):
embed → fit-head → compare → evaluate → predict, plus cache choice and refusals."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from featx.cli import app
from tests.imagegen import make_class_folder

pytestmark = pytest.mark.integration  # embeds with a Keras backbone, trains Keras heads

EMBED = ["--backbone", "MobileNetV2", "--weights", "none", "--image-size", "32"]
KERAS_QUICK = ["--param", "units=8", "--param", "epochs=3"]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Two datasets embedded once: class folders (no split), and train/val/test folders."""
    root = tmp_path_factory.mktemp("heads-cli")
    cache = root / ".featx"
    runner = CliRunner()
    plain = make_class_folder(root / "plain", classes=("cat", "dog"), per_class=6, size=(40, 40))
    splits = make_class_folder(root / "splits", classes=("cat", "dog"), per_class=3, size=(40, 40),
                               splits=("train", "val", "test"))
    for data in (splits, plain):  # plain last: the most recent cache
        done = runner.invoke(app, ["embed", str(data), *EMBED, "--cache", str(cache), "--quiet"])
        assert done.exit_code == 0, done.output
    return root


@pytest.fixture
def run(workspace, monkeypatch):
    monkeypatch.setenv("FEATX_CACHE_DIR", str(workspace / ".featx"))
    monkeypatch.chdir(workspace)
    runner = CliRunner()

    def invoke(*args, code=0):
        done = runner.invoke(app, [str(a) for a in args])
        assert done.exit_code == code, (done.stdout, done.stderr, done.exception)
        return done

    return invoke


def test_fit_head_uses_the_latest_cache_and_saves(run, workspace):
    done = run("fit-head", "--head", "logreg", "-o", workspace / "heads" / "plain-logreg")
    assert "using cache" in done.stderr and "plain--MobileNetV2" in done.stderr
    assert "(the latest of 2; choose with --backbone or --cache)" in done.stderr
    assert "split: holdout" in done.stdout and "saved" in done.stdout
    lines = done.stdout.splitlines()
    assert lines[1].split() == ["split", "images", "accuracy", "macro-F1"]
    assert [line.split()[:2] for line in lines[2:4]] == [["train", "9"], ["test", "3"]]
    meta = json.loads((workspace / "heads" / "plain-logreg" / "head.json").read_text())
    assert meta["head"] == "logreg" and meta["classes"] == ["cat", "dog"]
    assert meta["config"]["input_size"] == 32 and meta["fingerprint"] and meta["featx_version"]
    assert (meta["split"]["method"], len(meta["split"]["train"]), len(meta["split"]["test"])) == ("holdout", 9, 3)
    assert meta["params"] == {"random_state": 0}


def test_fit_head_json_on_the_split_cache(run, workspace):
    done = run("fit-head", "--head", "keras", *KERAS_QUICK, "--backbone", "mobilenetv2",
               "--cache", workspace / "splits--placeholder.h5", code=1)
    assert "does not exist" in done.stderr
    splits_cache = next((workspace / ".featx").glob("splits--*.h5"))
    done = run("fit-head", "--head", "keras", *KERAS_QUICK, "--cache", splits_cache, "--json")
    report = json.loads(done.stdout)
    assert report["head"] == "keras" and report["split"]["method"] == "cache"
    assert {k: v["n"] for k, v in report["metrics"].items()} == {"train": 6, "val": 6, "test": 6}
    assert report["params"]["units"] == 8 and report["path"].endswith("keras-MobileNetV2")
    assert report["fingerprint"] and report["config"]["backbone"] == "MobileNetV2"


def test_fit_head_refusals(run):
    assert "unknown head 'svn'" in run("fit-head", "--head", "svn", code=2).stderr
    done = run("fit-head", "--head", "keras", "--param", "unit=3", code=2)
    assert "allowed: units, dropout" in done.stderr and "Traceback" not in done.stderr
    assert "key=value" in run("fit-head", "--param", "C", code=2).stderr
    assert "--class-weight must be 'balanced' or 'none'" in run("fit-head", "--class-weight", "heavy", code=2).stderr
    assert "--test-size must be at least 0 and below 1" in run("fit-head", "--test-size", "1.5", code=2).stderr
    assert "drop --class-weight" in run("fit-head", "--head", "knn", "--class-weight", "balanced", code=2).stderr
    assert "No cache of backbone 'Xception'" in run("fit-head", "--backbone", "Xception", code=1).stderr


def test_compare_leaderboard(run):
    done = run("compare", "--heads", "logreg,svm,knn,keras", "--param", "svm.calibration_cv=2",
               "--param", "knn.n_neighbors=3", "--param", "keras.units=8", "--param", "keras.epochs=2", "--json")
    rows = json.loads(done.stdout)
    assert sorted(r["head"] for r in rows) == ["keras", "knn", "logreg", "svm"]
    assert all(r["n"] == 3 and 0 <= r["accuracy"] <= 1 and r["fit_seconds"] >= 0 for r in rows)
    assert "fitting svm on MobileNetV2" in done.stderr
    done = run("compare", "--heads", "logreg,knn", "--param", "n_neighbors=2", "--cv", "3")
    assert done.stdout.splitlines()[0].split() == ["rank", "backbone", "head", "accuracy", "macro-F1", "fit", "s"]
    assert "±" in done.stdout and "mean of 3 stratified folds" in done.stdout


def test_compare_several_caches(run, workspace):
    caches = sorted((workspace / ".featx").glob("*--MobileNetV2--*.h5"))
    caches = [c for c in caches if not c.name.startswith("files--")]
    args = [a for c in caches for a in ("--cache", c)]
    rows = json.loads(run("compare", "--heads", "logreg", *args, "--json").stdout)
    assert sorted(r["cache"] for r in rows) == sorted(str(c) for c in caches)
    rows = json.loads(run("compare", "--heads", "knn", "--backbones", "MobileNetV2", "--json").stdout)
    assert len(rows) == 1
    done = run("compare", "--heads", "knn", "--cache", workspace / ".featx", "--cache", caches[0], code=2)
    assert "--cache takes .h5 cache files, or one cache folder" in done.stderr


def test_choosing_caches_from_python(workspace):
    from featx.cache.catalog import choose_cache, choose_caches
    from featx.errors import MissingFileError, OptionError

    folder = workspace / ".featx"
    latest = choose_cache(folder)
    assert latest.path.name.startswith("plain--") and latest.among == 2
    assert latest.note().endswith("(the latest of 2; choose with the 'backbone' parameter or the 'cache' parameter)")
    assert choose_cache(latest.path).among == 1 and choose_cache(latest.path).note() == f"using cache {latest.path}"
    assert choose_cache(folder, "mobilenetv2").path == latest.path
    with pytest.raises(MissingFileError, match="The 'cache' parameter .*nowhere does not exist"):
        choose_cache(workspace / "nowhere")
    assert [c.path for c in choose_caches([folder], ["MobileNetV2"])] == [latest.path]
    with pytest.raises(OptionError, match="The 'caches' parameter takes .h5 cache files, or one cache folder"):
        choose_caches([folder, latest.path])


def test_evaluate_with_plots(run, workspace):
    splits_cache = next((workspace / ".featx").glob("splits--*.h5"))
    run("fit-head", "--head", "keras", *KERAS_QUICK, "--cache", splits_cache, "-o", workspace / "heads" / "k")
    done = run("evaluate", workspace / "heads" / "k", "--plot", workspace / "confusion.png")
    assert "accuracy" in done.stdout and "top-2 accuracy" in done.stdout and "confusion matrix" in done.stdout
    assert (workspace / "confusion.png").read_bytes()[:4] == b"\x89PNG"
    assert (workspace / "confusion-curves.png").read_bytes()[:4] == b"\x89PNG"
    report = json.loads(run("evaluate", workspace / "heads" / "k", "--split", "val", "--json").stdout)
    assert report["split"] == "val" and report["n"] == 6 and len(report["confusion"]) == 2
    assert {r["class"] for r in report["per_class"]} == {"cat", "dog"}
    assert all(m["path"].endswith(".png") for m in report["misclassified"])
    assert "--split must be one of" in run("evaluate", workspace / "heads" / "k", "--split", "x", code=2).stderr


def test_evaluate_refuses_another_backbone_configuration(run, workspace, tmp_path):
    run("fit-head", "--head", "knn", "-o", workspace / "heads" / "knn32")
    other = tmp_path / "other.h5"
    run("embed", workspace / "plain", "--backbone", "MobileNetV2", "--weights", "none", "--image-size", "40",
        "--cache", other, "--quiet")
    done = run("evaluate", workspace / "heads" / "knn32", "--cache", other, code=1)
    assert "another backbone configuration" in done.stderr and "input_size 32 vs 40" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_tampered_head_is_one_clear_error(run, workspace):
    run("fit-head", "--head", "logreg", "-o", workspace / "heads" / "tampered")
    (workspace / "heads" / "tampered" / "estimator.skops").write_bytes(b"PK\x03\x04 not what was saved")
    done = run("evaluate", workspace / "heads" / "tampered", code=1)
    assert done.stderr.startswith("error: ") and "modified after the head was saved" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_predict_a_folder_with_a_bad_image(run, workspace):
    run("fit-head", "--head", "logreg", "-o", workspace / "heads" / "p")
    new = make_class_folder(workspace / "new", classes=("x",), per_class=2, size=(40, 40))
    (new / "x" / "bad.jpg").write_text("this is not a picture")
    done = run("predict", workspace / "heads" / "p", new, "-o", workspace / "predictions.csv")
    assert "skipped" in done.stderr and "bad.jpg" in done.stderr and "2 images predicted, 1 skipped" in done.stderr
    rows = list(csv.DictReader(io.StringIO((workspace / "predictions.csv").read_text())))
    assert list(rows[0]) == ["path", "label", "confidence", "prob_cat", "prob_dog"]
    assert len(rows) == 2 and all(r["label"] in ("cat", "dog") for r in rows)
    assert all(abs(float(r["prob_cat"]) + float(r["prob_dog"]) - 1) < 1e-5 for r in rows)
    assert all(float(r["confidence"]) == max(float(r["prob_cat"]), float(r["prob_dog"])) for r in rows)
    report = json.loads(run("predict", workspace / "heads" / "p", new, "--json").stdout)
    assert len(report["predictions"]) == 2 and report["skipped"][0]["path"].endswith("bad.jpg")
    done = run("predict", workspace / "heads" / "p", new / "x" / "bad.jpg", code=1)  # nothing readable
    assert done.stderr.startswith("error: ") and "bad.jpg" in done.stderr and done.stdout == ""


def test_heads_by_name_and_listing(run, workspace):
    run("fit-head", "--head", "knn")
    saved = sorted(p.name for p in (workspace / ".featx" / "heads").iterdir())
    assert saved and all(name.startswith(("knn-", "keras-", "logreg-")) for name in saved)
    assert "accuracy" in run("evaluate", saved[0]).stdout  # a name in <cache dir>/heads
    listing = run("heads").stdout
    assert "logreg" in listing and "C=1.0" in listing and saved[0] in listing
    assert {h["name"] for h in json.loads(run("heads", "--json").stdout)["heads"]} == {"logreg", "svm", "sgd", "knn", "keras", "zeroshot"}


def test_scikit_learn_heads_never_import_tensorflow(workspace):
    """Importing featx, fitting, saving, loading and evaluating a logreg head stays TensorFlow-free."""
    cache = next((workspace / ".featx").glob("plain--*.h5"))
    script = f"""
import sys
import featx
from featx.heads import evaluate_head, fit_head, load_head
head = fit_head(featx.load_features({str(cache)!r}), "logreg")
loaded = load_head(head.save({str(workspace / "tf-free")!r}))
print(evaluate_head(loaded).accuracy)
leaked = [m for m in ("tensorflow", "keras") if m in sys.modules]
assert not leaked, leaked
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_views_from_embed_to_fit_head_and_compare(run, workspace):
    data = workspace / "splits"
    done = run("embed", data, *EMBED, "--views", "2", "--augment", "jitter,crop", "--json")
    report = json.loads(done.stdout)
    assert (report["embedded"], report["reused"]) == (0, 18)  # the plain vectors are reused as they are
    views = report["views"]
    assert (views["images"], views["embedded"], views["reused"], views["augment"]) == (6, 12, 0, "crop,jitter")
    done = run("embed", data, *EMBED, "--views", "2", "--augment", "crop,jitter")
    assert "2 views (crop,jitter) of 6 training images: 0 embedded, 12 reused" in done.stdout
    splits_cache = next((workspace / ".featx").glob("splits--*.h5"))
    done = run("fit-head", "--head", "logreg", "--cache", splits_cache, "--views", "--json")
    fitted = json.loads(done.stdout)
    assert fitted["views"]["rows"] == 12 and fitted["metrics"]["test"]["n"] == 6  # scored on plain vectors
    assert "using 2 views (crop,jitter) per training image" in done.stderr
    done = run("compare", "--heads", "logreg,knn", "--cache", splits_cache, "--views", "--augment", "crop,jitter")
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["rank", "backbone", "head", "views", "accuracy", "macro-F1", "fit", "s"]
    assert sorted(line.split()[2:4] for line in lines[1:5]) == [["knn", "-"], ["knn", "2"], ["logreg", "-"],
                                                                ["logreg", "2"]]
    done = run("fit-head", "--cache", splits_cache, "--augment", "crop", code=2)
    assert done.stderr.splitlines()[-1] == ("error: --augment names the recipe of the cached views to train on; "
                                            "ask for views too.")
    done = run("embed", data, *EMBED, "--views", "-1", code=2)
    assert "--views must be a number of views per image from 0 to 64; got -1" in done.stderr
