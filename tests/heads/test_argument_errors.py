"""Issue 24: bad arguments to the heads, compare, fusion and inspect are refused in one line that
names the parameter, as the featx error a Python user expects (OptionError is a ValueError,
OptionTypeError a TypeError), and the command line shows the same refusal (exit 2, the flag)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from typer.testing import CliRunner

import featx
from featx.cache.catalog import choose_cache, choose_caches
from featx.cli import app
from featx.errors import OptionError, OptionTypeError
from featx.features.fusion import choose_compared, choose_features
from featx.heads import HEADS, compare_heads, fit_head, make_head, predict_images
from featx.heads.params import params_per_head
from featx.options import EmbedOptions
from tests.property.test_fuzz import make_cache as fuzz_cache

CONFIGS = {name: EmbedOptions(name, weights="none", image_size=32).resolve() for name in ("MobileNetV2", "ResNet50")}
WIDTH = 8

def make_cache(path: Path, backbone: str = "MobileNetV2") -> Path:
    """A small cache written from arrays (tests/property/test_fuzz.py's), under ``backbone``'s configuration."""
    return fuzz_cache(path, config=CONFIGS[backbone])


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A cache folder with one cache of each of two backbones (12 images per class)."""
    root = tmp_path_factory.mktemp("argument-errors") / "caches"
    root.mkdir()
    make_cache(root / "mobilenet.h5", "MobileNetV2")
    make_cache(root / "resnet.h5", "ResNet50")
    return root


def refused(error: type, param: str | None, call, *args, **kwargs) -> str:
    """Run ``call``; it must raise ``error`` (exactly that featx class, not a subclass) naming ``param``."""
    with pytest.raises(error) as caught:
        call(*args, **kwargs)
    assert type(caught.value) is error, repr(caught.value)
    assert caught.value.param == param, (caught.value.param, str(caught.value))
    if param is not None:
        assert f"'{param}' parameter" in str(caught.value)
    assert "\n" not in str(caught.value)
    return str(caught.value)


def invoke(*args, code: int = 2, flag: str | None = None) -> str:
    """Run the CLI; it must exit ``code`` with one ``error:`` line on stderr naming ``flag``."""
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == code, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert lines and lines[-1].startswith("error: ") and sum(line.startswith("error:") for line in lines) == 1, lines
    assert "unexpected" not in lines[-1]
    if flag is not None:
        assert flag in lines[-1], lines[-1]
    return lines[-1]


# --- fit_head / compare_heads arguments -------------------------------------------------------------

def test_a_test_size_of_the_wrong_type_is_a_type_error_naming_it(folder):
    refused(OptionTypeError, "test_size", fit_head, folder / "mobilenet.h5", test_size="0.2")
    refused(OptionTypeError, "test_size", compare_heads, [folder / "mobilenet.h5"], ["logreg"], test_size="0.2")
    refused(OptionError, "test_size", fit_head, folder / "mobilenet.h5", test_size=1.5)


def test_more_folds_than_a_class_has_images_is_an_option_error_naming_cv(folder):
    message = refused(OptionError, "cv", compare_heads, [folder / "mobilenet.h5"], ["logreg"], cv=100)
    assert "smallest class has" in message
    refused(OptionTypeError, "cv", compare_heads, [folder / "mobilenet.h5"], ["logreg"], cv="3")
    refused(OptionError, "cv", compare_heads, [folder / "mobilenet.h5"], ["logreg"], cv=0)


def test_compared_heads_must_be_distinct_known_names(folder):
    cache = folder / "mobilenet.h5"
    refused(OptionError, "heads", compare_heads, [cache], ["logreg", "logreg"])
    refused(OptionError, "heads", compare_heads, [cache], ["logreg", "LogReg"])
    refused(OptionError, "heads", compare_heads, [cache], [])
    refused(OptionError, "heads", compare_heads, [cache], ["logreg", ""])
    refused(OptionError, "heads", compare_heads, [cache], ["logreg", "nope"])
    refused(OptionError, "head", fit_head, cache, "nope")


# --- head parameters: one check in the registry, for every head kind -------------------------------

def _numeric_params(name: str) -> list[str]:
    return [key for key, default in HEADS[name].defaults().items()
            if isinstance(default, (int, float)) and not isinstance(default, bool)]


@pytest.mark.parametrize("name", list(HEADS))
def test_a_number_parameter_given_text_is_a_type_error_naming_it_for_every_head(name):
    for key in _numeric_params(name):
        message = refused(OptionTypeError, key, make_head, name, **{key: "x"})
        assert f"the {name} head" in message


@pytest.mark.parametrize("name, params, param", [
    ("knn", {"n_neighbors": 0}, "n_neighbors"),
    ("logreg", {"C": -1.0}, "C"),
    ("logreg", {"max_iter": -1}, "max_iter"),
    ("sgd", {"alpha": -1.0}, "alpha"),
    ("sgd", {"epochs": 0}, "epochs"),  # SGDClassifier calls it max_iter: the head's own name is the one named
    ("svm", {"C": -1.0}, "C"),
    ("svm", {"kernel": "poly"}, "kernel"),
    ("svm", {"kernel": "rbf", "n_components": 0}, "n_components"),  # checked only with the kernel that uses it
    ("svm", {"calibration_cv": 1}, "calibration_cv"),
    ("keras", {"units": 0}, "units"),
    ("keras", {"dropout": 1.0}, "dropout"),
])
def test_a_parameter_out_of_range_is_an_option_error_naming_it(name, params, param):
    message = refused(OptionError, param, make_head, name, **params)
    assert f"the {name} head" in message
    refused(OptionError, param, HEADS[name].check_params, params)


def test_head_parameters_are_refused_by_fit_head_and_compare_before_any_fit(folder):
    cache = folder / "mobilenet.h5"
    refused(OptionError, "n_neighbors", fit_head, cache, "knn", n_neighbors=0)
    refused(OptionTypeError, "C", fit_head, cache, "logreg", C="x")
    refused(OptionTypeError, "scale", fit_head, cache, "logreg", scale="yes")
    refused(OptionError, "n_neighbors", compare_heads, [cache], ["knn"], params={"knn": {"n_neighbors": 0}})
    refused(OptionTypeError, "C", params_per_head, ["logreg.C=x"], ["logreg"])
    assert fit_head(cache, "knn", n_neighbors=3).params["n_neighbors"] == 3  # valid values still fit


def test_head_parameters_from_the_command_line_exit_2_in_one_line(folder):
    invoke("fit-head", "--cache", folder / "mobilenet.h5", "--head", "knn", "-p", "n_neighbors=0", flag="knn head")
    invoke("fit-head", "--cache", folder / "mobilenet.h5", "--head", "logreg", "-p", "C=x", flag="logreg head")


def test_head_parameters_from_the_command_line_are_named_as_the_param_option(folder):
    invoke("fit-head", "--cache", folder / "mobilenet.h5", "--head", "knn", "-p", "n_neighbors=0",
           flag="--param n_neighbors")


# --- predict_images: one path is one image ---------------------------------------------------------

def test_a_single_path_is_one_image_not_its_characters(folder, tmp_path, monkeypatch):
    image = tmp_path / "a" / "1.png"
    image.parent.mkdir()
    image.write_bytes(b"not decoded here")
    seen = []

    def embed_files(files, config, run, cache=None, progress=None):
        seen.append(list(files))
        return SimpleNamespace(ok=[True] * len(files), X=np.zeros((len(files), WIDTH), np.float32), skipped=[])

    monkeypatch.setattr("featx.engine.files.embed_files", embed_files)
    head = fit_head(folder / "mobilenet.h5", "logreg")
    for single in (str(image), image):
        result = predict_images(head, single)
        assert seen[-1] == [image] and result.paths == [str(image)]
    refused(OptionTypeError, "inputs", predict_images, head, 3)


# --- choosing caches and backbones ------------------------------------------------------------------

def test_a_cache_file_with_a_backbone_is_refused_like_compare_refuses_it(folder):
    cache = folder / "mobilenet.h5"
    refused(OptionError, "backbone", choose_cache, cache, "ResNet50")
    refused(OptionError, "backbone", choose_features, cache, "ResNet50")
    refused(OptionError, "caches", choose_caches, [cache], ["ResNet50"])  # compare's refusal, unchanged
    assert choose_cache(cache).path == cache and choose_features(cache, None)[0] == cache
    assert choose_cache(folder, "ResNet50").path == folder / "resnet.h5"
    invoke("fit-head", "--cache", cache, "--backbone", "ResNet50", flag="--backbone")
    invoke("inspect", cache, "--backbone", "ResNet50", flag="--backbone")


def test_a_fusion_of_a_backbone_with_itself_is_refused(folder):
    refused(OptionError, "backbone", choose_features, folder, "MobileNetV2+MobileNetV2")
    refused(OptionError, "backbone", choose_features, folder, "MobileNetV2+mobilenetv2")
    refused(OptionError, "backbones", choose_compared, [folder], ["MobileNetV2+MobileNetV2"])
    invoke("fit-head", "--cache", folder, "--backbone", "MobileNetV2+MobileNetV2", flag="--backbone")
    invoke("compare", "--cache", folder, "--backbones", "MobileNetV2+MobileNetV2", "--heads", "logreg",
           flag="--backbones")


def test_compared_backbones_must_be_distinct_non_empty_names(folder):
    refused(OptionError, "backbones", choose_compared, [folder], ["MobileNetV2", "MobileNetV2"])
    refused(OptionError, "backbones", choose_compared, [folder], ["MobileNetV2", "mobilenetv2"])
    refused(OptionError, "backbones", choose_compared, [folder], ["", ""])
    refused(OptionError, "backbones", choose_compared, [folder], ["MobileNetV2", " "])
    refused(OptionError, "backbones", choose_caches, [folder], ["ResNet50", "ResNet50"])
    sources, _ = choose_compared([folder], ["MobileNetV2", "ResNet50"])  # distinct ones still work
    assert sources == [folder / "mobilenet.h5", folder / "resnet.h5"]
    invoke("compare", "--cache", folder, "--backbones", "ResNet50,ResNet50", "--heads", "logreg", flag="--backbones")


def test_compare_refuses_repeated_heads_and_too_many_folds_on_the_command_line(folder):
    cache = folder / "mobilenet.h5"
    invoke("compare", "--cache", cache, "--heads", "logreg,logreg", flag="--heads")
    assert "smallest class has" in invoke("compare", "--cache", cache, "--heads", "logreg", "--cv", "1000", flag="--cv")


def test_compare_refuses_empty_backbones_on_the_command_line(folder):
    invoke("compare", "--cache", folder, "--backbones", ",,", "--heads", "logreg", flag="--backbones")


def test_compare_refuses_empty_heads_on_the_command_line(folder):
    invoke("compare", "--cache", folder / "mobilenet.h5", "--heads", "", flag="--heads")


# --- inspect ------------------------------------------------------------------------------------------

def test_inspect_refuses_more_folds_than_any_class_has_images(folder):
    cache = folder / "mobilenet.h5"
    message = refused(OptionError, "folds", featx.inspect, cache, folds=1000)
    assert "12" in message  # the largest class: what the user may give at most
    refused(OptionTypeError, "folds", featx.inspect, cache, folds="5")
    assert featx.inspect(cache, folds=12).params["folds"] == 12  # as many folds as each class has images
    invoke("inspect", cache, "--folds", "1000", flag="--folds")


def test_inspect_refuses_a_negative_top_on_the_command_line(folder):
    invoke("inspect", folder / "mobilenet.h5", "--top", "-1", flag="--top")
