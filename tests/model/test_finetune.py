"""Fine-tuning from a cached head, and exporting one deployable model."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.datasets import make_blobs

import featx
from featx.config import fingerprint_of
from featx.errors import FeatxError, OptionError, OptionTypeError
from featx.features.vectors import Features
from featx.heads import fit_head

pytestmark = pytest.mark.integration  # builds and trains Keras models

SIZE = 24


def _features_from_blobs(n_classes: int, dim: int = 12) -> Features:
    X, y = make_blobs(120, n_features=dim, centers=n_classes, random_state=1)
    config = {"backbone": "MobileNetV2", "weights": "none:seed=0", "input_size": 32, "resize": "stretch",
              "pooling": "avg", "preprocessing": "tf"}
    n = len(X)
    return Features(
        X=X.astype(np.float32), y=y, classes=tuple("abcd"[:n_classes]),
        paths=np.asarray([f"/img/{i}.png" for i in range(n)], dtype=object),
        ids=np.asarray([f"{i:064x}" for i in range(n)], dtype=object), split=np.asarray([""] * n, dtype=object),
        config=config, fingerprint=fingerprint_of(config),
    )


@pytest.mark.parametrize("n_classes", [2, 3])
@pytest.mark.parametrize("kind,params", [("logreg", {}), ("logreg", {"scale": False}),
                                         ("svm", {}), ("svm", {"C": 1.0}), ("sgd", {}),
                                         ("keras", {"epochs": 3, "units": 8})])
def test_heads_convert_to_keras_layers_with_identical_probabilities(kind, params, n_classes):
    from featx.model.build import head_network

    features = _features_from_blobs(n_classes)
    head = fit_head(features, head=kind, **params)
    network = head_network(head)
    np.testing.assert_allclose(np.asarray(network(features.X)), head.predict_proba(features.X), atol=1e-5)


def test_a_knn_head_cannot_be_converted():
    from featx.model.build import head_network

    head = fit_head(_features_from_blobs(2), head="knn")
    with pytest.raises(FeatxError, match="knn head, which has no equivalent Keras layer.*--head keras"):
        head_network(head)


def test_an_rbf_svm_head_cannot_be_converted():
    from featx.model.build import head_network

    head = fit_head(_features_from_blobs(2), head="svm", kernel="rbf", n_components=20, calibration_cv=2)
    with pytest.raises(FeatxError, match="svm head with kernel='rbf', which has no equivalent Keras layer.*"
                                         "kernel=linear"):
        head_network(head)


def test_the_registry_says_which_heads_convert():
    from featx.heads.registry import HEADS, convertible_heads

    assert convertible_heads() == ["logreg", "svm", "sgd", "keras", "zeroshot"] and HEADS["knn"].to_keras is None


# --- end to end on images, with a tiny CNN backbone (random ImageNet-size nets give vanishing features)


def _tiny_backbone(path):
    import keras

    keras.utils.set_random_seed(3)
    inputs = keras.Input((SIZE, SIZE, 3))
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv_bottom")(inputs)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Conv2D(8, 3, activation="relu", name="conv_top")(x)
    keras.Model(inputs, x, name="tiny").save(path)
    return path


def _image_folder(root):
    """Reddish vs bluish images: learnable, but not perfectly by a random network."""
    rng = np.random.default_rng(0)
    for split, count in (("train", 10), ("val", 4), ("test", 4)):
        for label, channel in (("red", 0), ("blue", 2)):
            for i in range(count):
                pixels = rng.integers(0, 200, (SIZE + 6, SIZE + 2, 3)).astype(np.uint8)
                pixels[..., channel] = np.clip(pixels[..., channel] + 40, 0, 255)
                path = root / split / label / f"{label}_{i}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                from PIL import Image

                Image.fromarray(pixels).save(path)
    return root


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("finetune")
    os.environ["FEATX_CACHE_DIR"] = str(root / "cache")
    try:
        data = _image_folder(root / "data")
        backbone = _tiny_backbone(root / "tiny.keras")
        features = featx.embed(data, str(backbone), preprocess="tf")
        heads = {}
        for kind, params in (("keras", {"epochs": 5, "units": 16, "random_state": 0}), ("logreg", {}),
                             ("svm", {"kernel": "linear"})):
            head = fit_head(features, head=kind, **params)
            head.save()
            heads[kind] = head
        yield root, data, features, heads
    finally:
        os.environ.pop("FEATX_CACHE_DIR", None)


def _weights(model, name):
    from featx.backbones.unfreeze import leaf_layers

    layer = next(leaf for leaf in leaf_layers(model) if leaf.name == name)
    return [np.array(w) for w in layer.get_weights()]


def test_fine_tune_trains_the_top_and_keeps_the_bottom_and_batchnorm(workspace):
    import keras

    from featx.model.finetune import fine_tune

    root, _, features, heads = workspace
    frozen = keras.saving.load_model(root / "tiny.keras")
    report = fine_tune(heads["keras"], unfreeze=3, epochs=3, learning_rate=1e-2, batch_size=8,
                       output=root / "ft.keras", augment="", patience=5)
    model = keras.saving.load_model(report.model_path, safe_mode=True)

    for before, after in zip(_weights(frozen, "conv_bottom"), _weights(model, "conv_bottom")):
        np.testing.assert_array_equal(before, after)  # below the unfreeze point
    for before, after in zip(_weights(frozen, "bn"), _weights(model, "bn")):
        np.testing.assert_array_equal(before, after)  # gamma, beta and the moving statistics
    assert not all(np.array_equal(b, a) for b, a in zip(_weights(frozen, "conv_top"), _weights(model, "conv_top")))

    assert report.unfrozen_layers == 3 and report.epochs_run == 3
    assert report.after["train"]["loss"] < report.before["train"]["loss"]
    # before = the head on frozen features, through the whole network
    val = features.where_split("val")
    head_accuracy = float(np.mean(heads["keras"].predict(val.X) == np.asarray(val.classes)[val.y]))
    assert report.before["val"]["accuracy"] == pytest.approx(head_accuracy)
    assert report.curves_path.is_file() and report.curves_path.stat().st_size > 1000
    assert not (root / "ft.keras.training").exists()

    new = featx.embed(root / "data", str(report.backbone_path))  # the fine-tuned features, as a backbone
    assert new.X.shape == (len(features), features.feature_dim) and new.config["preprocessing"] == "none"


def test_a_killed_fine_tune_resumes_from_its_last_epoch(workspace):
    from featx.model.finetune import fine_tune

    root, _, _, heads = workspace
    out = root / "resumed.keras"
    env = {**os.environ, "FEATX_CRASH_AT": "finetune-epoch:2"}
    command = [sys.executable, "-m", "featx", "fine-tune", str(heads["logreg"].path), "--epochs", "4",
               "--unfreeze", "all", "--learning-rate", "0.001", "--batch-size", "8", "-o", str(out), "--json"]
    assert subprocess.run(command, env=env, capture_output=True, timeout=300).returncode == -9
    assert (root / "resumed.keras.training").is_dir() and not out.exists()

    report = fine_tune(heads["logreg"], epochs=4, unfreeze="all", learning_rate=1e-3, batch_size=8,
                       output=out)
    assert report.resumed_from_epoch == 2 and report.fresh_start == ""
    assert report.epochs_run == 2 and len(report.history["loss"]) == 4  # 2 before the kill, 2 after
    assert out.is_file()


def _interrupted_fine_tune(head, monkeypatch, **options):
    """A fine-tune stopped after its first epoch, its resume folder left behind as by a kill."""
    import featx.model.epochs
    import featx.model.finetune

    class Killed(Exception):
        pass

    def crash(name):
        raise Killed(name)

    with monkeypatch.context() as patch:
        patch.setattr(featx.model.epochs, "crash_point", crash)
        with pytest.raises(Killed):
            featx.model.finetune.fine_tune(head, **options)


def test_a_resume_folder_of_another_head_or_other_options_is_not_resumed(workspace, monkeypatch):
    from featx.model.finetune import fine_tune

    root, _, _, heads = workspace
    out = root / "shared.keras"
    options = dict(unfreeze=2, learning_rate=1e-3, batch_size=8, augment="", output=out, patience=10)
    _interrupted_fine_tune(heads["keras"], monkeypatch, epochs=3, **options)
    assert (root / "shared.keras.training").is_dir()
    report = fine_tune(heads["logreg"], epochs=1, **options)  # not the keras head's weights, nor a crash
    assert report.resumed_from_epoch == 0 and "another head" in report.fresh_start
    assert len(report.history["loss"]) == 1 and out.is_file()

    _interrupted_fine_tune(heads["logreg"], monkeypatch, epochs=3, **options)
    report = fine_tune(heads["logreg"], epochs=2, **{**options, "learning_rate": 1e-2})
    assert report.resumed_from_epoch == 0 and "learning_rate" in report.fresh_start
    assert len(report.history["loss"]) == 2



def test_augment_is_a_recipe_string_and_the_old_bool_is_refused_by_name(workspace):
    from featx.model.finetune import fine_tune

    root, _, _, heads = workspace
    for value in (True, False):
        with pytest.raises(OptionTypeError, match=r"^The 'augment' parameter takes a recipe of augmentations, like "
                                                  r"'flip,crop,jitter' \(the default\), or '' for none; got bool " + str(value)):
            fine_tune(heads["logreg"], augment=value, output=root / "bool.keras")
    with pytest.raises(OptionError, match=r"^The 'augment' parameter must name one or more of flip, vflip, crop, "
                                          r"jitter \(comma-separated\); got 'flip,rotate'\.$") as raised:
        fine_tune(heads["logreg"], augment="flip,rotate", output=root / "bool.keras")
    assert raised.value.param == "augment" and not (root / "bool.keras.training").exists()


def test_training_batches_are_the_images_augmented_by_the_recipe_and_seeded(workspace):
    from featx.data.images import load_image
    from featx.model.trainingdata import image_dataset, split_images

    _, _, _, heads = workspace
    config = heads["logreg"].embed_config()
    train = split_images(heads["logreg"])["train"]
    plain = np.stack([load_image(path, (SIZE, SIZE), config.resize) for path in train.paths])

    def batches(augment, seed=0):
        dataset = image_dataset(train, config, 8, shuffle=False, augment=augment, seed=seed)
        return np.concatenate([dataset[i][0] for i in range(len(dataset))])

    np.testing.assert_array_equal(batches(""), plain)
    flipped = batches("flip")
    assert flipped.dtype == np.float32 and flipped.shape == plain.shape
    mirrored = [not np.array_equal(f, p) for f, p in zip(flipped, plain)]
    assert 0 < sum(mirrored) < len(plain)
    for f, p, m in zip(flipped, plain, mirrored):
        np.testing.assert_array_equal(f, p[:, ::-1] if m else p)  # a flip, nothing else
    np.testing.assert_array_equal(batches("flip"), flipped)  # same seed, same batches
    assert not np.array_equal(batches("flip", seed=1), flipped)
    cropped = batches("crop,flip")
    assert cropped.shape == plain.shape and not np.array_equal(cropped, flipped)  # cropped, resized back


def test_no_augment_and_an_empty_recipe_are_the_same_run(workspace, monkeypatch):
    from typer.testing import CliRunner

    from featx.cli import app

    root, _, _, heads = workspace
    out = root / "plain.keras"
    common = ["fine-tune", str(heads["logreg"].path), "--epochs", "2", "--unfreeze", "1", "--batch-size", "8",
              "-o", str(out), "--json"]

    def crash(name):
        raise KeyboardInterrupt(name)

    with monkeypatch.context() as patch:
        patch.setattr("featx.model.epochs.crash_point", crash)
        assert CliRunner().invoke(app, common + ["--no-augment"]).exit_code == 130
    assert json.loads((root / "plain.keras.training" / "run.json").read_text())["options"]["augment"] == ""
    result = CliRunner().invoke(app, common + ["--augment", ""])  # the run --no-augment started, resumed
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["resumed_from_epoch"] == 1 and report["fresh_start"] == "" and len(report["history"]["loss"]) == 2
    result = CliRunner().invoke(app, common + ["--no-augment", "--augment", "flip"])
    assert result.exit_code == 2 and result.stderr.strip() == (
        "error: --no-augment and --augment both say which augmentations to use; give one.")
    result = CliRunner().invoke(app, common + ["--augment", "rotate"])
    assert result.exit_code == 2 and result.stderr.strip() == (
        "error: --augment must name one or more of flip, vflip, crop, jitter (comma-separated); got 'rotate'.")


def test_a_resume_folder_recorded_with_the_old_bool_augment_starts_afresh(tmp_path):
    from featx.model.finetune import RUN_FILE, _claim

    work = tmp_path / "m.keras.training"
    run = {"head": "h", "head_name": "h", "options": {"augment": "flip,crop", "seed": 0}, "images": {"train": 4}}
    work.mkdir()
    (work / "epochs.json").write_text("{}")
    (work / RUN_FILE).write_text(json.dumps({**run, "options": {"augment": True, "seed": 0}}))
    reason = _claim(work, run)
    assert "augment True, now 'flip,crop'" in reason and "started afresh" in reason
    assert not (work / "epochs.json").exists() and json.loads((work / RUN_FILE).read_text()) == run

@pytest.mark.parametrize("kind", ["keras", "logreg", "svm"])
def test_exported_model_equals_featx_predict(workspace, kind):
    import keras

    from featx.data.images import decode_rgb
    from featx.heads import predict_images
    from featx.model.export import class_names, export

    root, data, _, heads = workspace
    path = export(heads[kind], root / f"export-{kind}.keras")
    assert class_names(path) == ["blue", "red"]
    model = keras.saving.load_model(path, safe_mode=True)
    images = sorted(str(p) for p in (data / "test").rglob("*.png"))
    predicted = predict_images(heads[kind], images)
    for file, proba in zip(predicted.paths, predicted.proba):
        raw = decode_rgb(file)[None]  # uint8, its own size: resizing happens inside the model
        np.testing.assert_allclose(np.asarray(model(raw.astype(np.float32)))[0], proba, atol=1e-4)
        np.testing.assert_allclose(np.asarray(model.predict(raw, verbose=0))[0], proba, atol=1e-4)


@pytest.mark.parametrize("kind", ["keras", "svm"])
def test_onnx_export_equals_featx_predict(workspace, kind):
    onnxruntime = pytest.importorskip("onnxruntime", reason="the onnx extra: pip install 'featx[onnx]'")
    from featx.data.images import decode_rgb
    from featx.heads import predict_images
    from featx.model.export import class_names, export

    root, data, _, heads = workspace
    path = export(heads[kind], root / f"export-{kind}.onnx", format="onnx")
    assert class_names(path) == ["blue", "red"]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    images = sorted(str(p) for p in (data / "test").rglob("*.png"))
    predicted = predict_images(heads[kind], images)
    for file, proba in zip(predicted.paths, predicted.proba):
        raw = decode_rgb(file)[None].astype(np.float32)  # its own size: resizing happens inside the model
        np.testing.assert_allclose(session.run(None, {name: raw})[0][0], proba, atol=1e-4)


_ON_ANOTHER_BACKEND = """
import sys
import keras
import numpy as np
import featx
from featx.errors import OptionError
from featx.model.export import export
from featx.model.finetune import fine_tune
from featx.heads import fit_head, load_head
from featx.data.images import decode_rgb, load_image

backend, head_path, image, root = sys.argv[1:]
head = load_head(head_path)
report = fine_tune(head, epochs=1, unfreeze=2, output=f"{root}/ft.keras", backend=backend)
exported = keras.saving.load_model(export(report.model_path, f"{root}/ft-export.keras"), safe_mode=True)
tuned = keras.saving.load_model(report.model_path, safe_mode=True)
size = head.embed_config().input_size
expected = keras.ops.convert_to_numpy(tuned(load_image(image, (size, size))[None]))
raw = decode_rgb(image)[None].astype(np.float32)
np.testing.assert_allclose(keras.ops.convert_to_numpy(exported(raw)), expected, atol=1e-4)
keras_head = fit_head(featx.load_features(head.cache_path), head="keras", epochs=2, patience=2, units=8)
try:
    export(head, f"{root}/x.tflite", format="tflite")
except OptionError as error:
    print(error)
try:  # ONNX from this backend's own converter (jax2onnx on JAX), equal to featx predict
    import onnxruntime
    session = onnxruntime.InferenceSession(export(head, f"{root}/head.onnx", format="onnx"))
    proba = featx.heads.predict_images(head, [image]).proba
    np.testing.assert_allclose(session.run(None, {session.get_inputs()[0].name: raw})[0], proba, atol=1e-4)
    print("onnx ok")
except ImportError as error:
    print(error)
print("ok", report.epochs_run, keras_head.estimator.n_iter_)
assert "tensorflow" not in sys.modules, "TensorFlow was imported on " + backend
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_fine_tune_and_export_on_another_backend_without_tensorflow(workspace, tmp_path, backend):
    pytest.importorskip(backend, reason=f"pip install 'featx[{backend}]'")
    root, data, _, heads = workspace
    image = sorted((data / "val").rglob("*.png"))[0]
    env = {**os.environ, "KERAS_BACKEND": backend, "FEATX_CACHE_DIR": str(root / "cache")}
    done = subprocess.run([sys.executable, "-c", _ON_ANOTHER_BACKEND, backend, str(heads["logreg"].path), str(image),
                           str(tmp_path)], env=env, capture_output=True, text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ok 1 2" in done.stdout
    if importlib.util.find_spec("onnxruntime"):
        assert "onnx ok" in done.stdout or (backend == "jax" and "pip install jax2onnx" in done.stdout), done.stdout
    assert (f"The 'format' parameter tflite is a TensorFlow format and needs Keras on TensorFlow (this run is on "
            f"{backend})") in done.stdout


@pytest.mark.filterwarnings("ignore:.*tf.lite.Interpreter is deprecated:UserWarning")
def test_export_of_a_fine_tuned_model_and_other_formats(workspace):
    import keras
    import tensorflow as tf

    from featx.data.images import decode_rgb, load_image
    from featx.model.export import class_names, export
    from featx.model.finetune import fine_tune

    root, data, _, heads = workspace
    tuned = fine_tune(heads["svm"], epochs=1, unfreeze=2, output=root / "svm-ft.keras", augment="flip,crop").model_path
    classifier = keras.saving.load_model(tuned, safe_mode=True)
    image = sorted((data / "val").rglob("*.png"))[0]
    expected = np.asarray(classifier(load_image(image, (SIZE, SIZE))[None]))[0]
    raw = decode_rgb(image)[None].astype(np.float32)

    exported = keras.saving.load_model(export(tuned, root / "ft-export.keras"), safe_mode=True)
    np.testing.assert_allclose(np.asarray(exported(raw))[0], expected, atol=1e-4)

    saved = export(tuned, root / "saved", format="savedmodel")
    loaded = tf.saved_model.load(str(saved))
    np.testing.assert_allclose(loaded.serve(tf.constant(raw)).numpy()[0], expected, atol=1e-4)
    assert class_names(saved) == ["blue", "red"]

    lite = export(heads["logreg"], root / "model.tflite", format="tflite")
    interpreter = tf.lite.Interpreter(model_path=str(lite))
    interpreter.resize_tensor_input(interpreter.get_input_details()[0]["index"], raw.shape)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], raw)
    interpreter.invoke()
    lite_proba = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])[0]
    head_proba = featx.heads.predict_images(heads["logreg"], [image]).proba[0]
    np.testing.assert_allclose(lite_proba, head_proba, atol=1e-4)
    assert json.loads(lite.with_suffix(".tflite.json").read_text())["classes"] == ["blue", "red"]


def test_cli_fine_tune_and_export_errors(workspace):
    from typer.testing import CliRunner

    from featx.cli import app

    root, _, features, _ = workspace
    knn = fit_head(features, head="knn")
    knn.save(root / "knn-head")
    result = CliRunner().invoke(app, ["export", str(root / "knn-head"), "-o", str(root / "k.keras")])
    assert result.exit_code == 1 and "knn head, which has no equivalent Keras layer" in result.stderr
    result = CliRunner().invoke(app, ["fine-tune", str(root / "knn-head"), "--unfreeze", "lots"])
    assert result.exit_code == 2 and "--unfreeze must be" in result.stderr
    for flag, value, says in (("--wise", "1.5", "--wise is the share"), ("--wise", "-0.5", "--wise is the share"),
                              ("--head-learning-rate", "0", "--head-learning-rate must be above 0"),
                              ("--learning-rate", "-1e-4", "--learning-rate must be above 0")):
        result = CliRunner().invoke(app, ["fine-tune", str(root / "knn-head"), flag, value])
        assert result.exit_code == 2 and says in result.stderr and len(result.stderr.strip().splitlines()) == 1
    result = CliRunner().invoke(app, ["export", str(root / "knn-head"), "-o", "x.pb", "--format", "pb"])
    assert result.exit_code == 2 and "--format must be one of keras, onnx, savedmodel, tflite" in result.stderr


def test_fine_tune_keeps_the_heads_model_and_says_so_when_validation_does_not_improve(workspace):
    import keras

    from featx.model.file import read_metadata
    from featx.model.finetune import fine_tune

    root, _, _, heads = workspace
    frozen = keras.saving.load_model(root / "tiny.keras")
    # a learning rate that wrecks the unfrozen layers: validation cannot improve on the head
    report = fine_tune(heads["logreg"], unfreeze="all", epochs=2, learning_rate=50.0, head_learning_rate=50.0,
                       batch_size=8, augment="", output=root / "wrecked.keras", patience=5)
    assert report.kept == "head"
    assert (report.after["val"]["accuracy"], -report.after["val"]["loss"]) <= \
        (report.before["val"]["accuracy"], -report.before["val"]["loss"])
    saved = keras.saving.load_model(report.model_path, safe_mode=True)
    for name in ("conv_bottom", "conv_top"):  # the head's model: the backbone as it was
        for before, after in zip(_weights(frozen, name), _weights(saved, name)):
            np.testing.assert_array_equal(before, after)
    assert read_metadata(report.model_path)["fine_tune"]["kept"] == "head"


def test_the_head_trains_at_its_own_rate_and_wise_averages_what_validation_judges(workspace, monkeypatch):
    import keras

    import featx.model.finetune as finetune
    from featx.model.defaults import DEFAULT_HEAD_RATE_FACTOR, DEFAULT_WISE
    from featx.model.file import read_metadata
    from featx.model.rates import interpolate, two_rate_adam

    root, _, _, heads = workspace
    seen = {}

    def spy_adam(keras_, rate, head_variables, factor):
        seen["adam"] = (list(head_variables), factor)
        return two_rate_adam(keras_, rate, head_variables, factor)

    def spy_interpolate(start, end, alpha):
        seen["wise"] = (start, end, alpha, interpolate(start, end, alpha))
        return seen["wise"][3]

    monkeypatch.setattr(finetune, "two_rate_adam", spy_adam)
    monkeypatch.setattr(finetune, "interpolate", spy_interpolate)
    monkeypatch.setattr(finetune, "improved", lambda before, after: True)  # keep the averaged model
    report = finetune.fine_tune(heads["logreg"], unfreeze=1, epochs=2, learning_rate=1e-2, head_learning_rate=5e-2,
                                wise=0.5, batch_size=8, augment="", output=root / "wise.keras")
    variables, factor = seen["adam"]
    model = keras.saving.load_model(report.model_path, safe_mode=True)  # loads without featx's optimizer class
    head_layer = model.get_layer("featx_head")
    assert factor == pytest.approx(5.0) and [v.shape for v in variables] == [v.shape for v in head_layer.weights]
    start, end, alpha, averaged = seen["wise"]
    assert alpha == 0.5 and any(not np.array_equal(a, b) for a, b in zip(start, end))  # training moved something
    for saved, expected in zip(model.get_weights(), averaged):  # the average is what is kept and saved
        np.testing.assert_allclose(saved, expected, rtol=1e-6)
    assert report.kept == "fine-tuned" and set(report.unaveraged) == set(report.after) == {"train", "val", "test"}
    recorded = read_metadata(report.model_path)["fine_tune"]
    assert (recorded["head_learning_rate"], recorded["wise"]) == (5e-2, 0.5)

    seen.clear()  # the defaults
    report = finetune.fine_tune(heads["logreg"], unfreeze=1, epochs=1, learning_rate=1e-3, batch_size=8, augment="",
                                output=root / "plain.keras")
    assert seen["adam"][1] == pytest.approx(DEFAULT_HEAD_RATE_FACTOR)
    assert ("wise" in seen) == (DEFAULT_WISE < 1) and bool(report.unaveraged) == (DEFAULT_WISE < 1)


def test_a_head_without_a_val_split_is_refitted_with_validation_held_out(workspace):
    import dataclasses

    from featx.model.finetune import fine_tune

    root, _, features, _ = workspace
    no_val = dataclasses.replace(features, split=np.where(features.split == "val", "", features.split).astype(object))
    head = fit_head(no_val, head="logreg")
    assert not head.split.get("val")
    report = fine_tune(head, unfreeze=1, epochs=1, batch_size=8, augment="", output=root / "held.keras")
    assert len(head.split["train"]) == 20  # 10 per class; 15 %, stratified: 3 held out, the head refitted on 17
    assert "3 of the head's 20 training images held out" in report.validation and "other 17" in report.validation
    assert set(report.before) == {"train", "val", "test"} and report.temperature > 0


def test_compare_with_fine_tune_adds_a_fine_tune_row(workspace, monkeypatch):
    from typer.testing import CliRunner

    from featx.cli import app
    from featx.model import finetune

    _, _, features, _ = workspace
    real = finetune.fine_tune  # 1 epoch, not the default's whole schedule: the row, not the recipe, is tested here
    monkeypatch.setattr(finetune, "fine_tune", lambda head, **options: real(head, **{"epochs": 1, **options}))
    command = ["compare", "--cache", str(features.cache_path), "--heads", "logreg,knn", "--fine-tune", "--json"]
    result = CliRunner().invoke(app, command)
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert sorted(r["head"] for r in rows) == ["knn", "logreg", "logreg+fine-tune"]
    tuned, logreg = (next(r for r in rows if r["head"] == name) for name in ("logreg+fine-tune", "logreg"))
    assert tuned["kept"] in ("head", "fine-tuned") and tuned["n"] == logreg["n"]
    assert tuned["start"] == pytest.approx(logreg["accuracy"])  # warm-started from the same head, same test images
    assert [r["accuracy"] for r in rows] == sorted((r["accuracy"] for r in rows), reverse=True)


def test_by_default_the_whole_schedule_runs_even_when_validation_stalls(workspace):
    from featx.model.finetune import fine_tune

    root, _, _, heads = workspace
    # a rate too small to change any prediction: validation accuracy stays where it starts
    options = dict(unfreeze=1, epochs=5, learning_rate=1e-12, head_learning_rate=1e-12, batch_size=8, augment="")
    report = fine_tune(heads["logreg"], output=root / "stalled.keras", **options)
    assert report.epochs_run == 5 and len(report.history["val_accuracy"]) == 5
    assert report.kept_epoch == 5  # the last: validation on a few images would choose by noise
    stopped = fine_tune(heads["logreg"], output=root / "stopped.keras", patience=2, **options)
    assert stopped.epochs_run == 3  # the first epoch's score, then 2 without a better one
    assert stopped.kept_epoch == 1  # with early stopping, the best on validation (ties: the lower loss)
