"""One options object: every entry point sets the same options, and errors name the parameter."""

from __future__ import annotations

import inspect
from dataclasses import fields

import numpy as np
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

import featx
from featx.cli.embed import embed_command
from featx.embedder import Embedder
from featx.errors import FeatxError, MissingFileError, OptionError
from featx.options import EmbedOptions, RunOptions

OPTION_NAMES = {f.name for f in fields(EmbedOptions)}


def _parameters(function) -> set[str]:
    return set(inspect.signature(function).parameters)


def test_every_entry_point_sets_every_option():
    # featx.embed, Embedder and `featx embed` build one EmbedOptions: a new field must reach all three.
    assert OPTION_NAMES <= _parameters(featx.embed)
    assert _parameters(Embedder) - {"cache_dir"} == OPTION_NAMES
    # views and augment ask for augmented views of a dataset's training images (featx.engine.views): featx.embed and
    # `featx embed` take them; Embedder embeds loose files, which have no training images.
    assert {"views", "augment"} <= _parameters(featx.embed)
    cli = _parameters(embed_command) - {"data", "cache", "strict", "no_wait", "quiet", "as_json", "views", "augment"}
    assert cli == OPTION_NAMES
    defaults = {f.name: f.default for f in fields(EmbedOptions)}
    for name, parameter in inspect.signature(featx.embed).parameters.items():
        if name in defaults:
            assert parameter.default == defaults[name], name
    assert Embedder().get_params() == {**defaults, "cache_dir": None}


def test_run_options_are_the_part_that_does_not_change_vectors():
    options = EmbedOptions("MobileNetV2", weights="none", image_size=32, batch_size=4, workers=3)
    assert options.run_options() == RunOptions(batch_size=4, workers=3)
    assert options.resolve() == EmbedOptions("MobileNetV2", weights="none", image_size=32).resolve()
    assert options.resolve().fingerprint == EmbedOptions(
        "MobileNetV2", weights="none", image_size=32, batch_size=64).resolve().fingerprint


@pytest.mark.parametrize("kwargs,param,match", [
    ({"pooling": "mean"}, "pooling", "The 'pooling' parameter must be one of avg, max, cls, cls\\+avg, pooled; got 'mean'"),
    ({"resize": "zoom"}, "resize", "The 'resize' parameter must be one of stretch, crop, pad"),
    ({"batch_size": 0}, "batch_size", "The 'batch_size' parameter must be an integer from 1 to 65536; got 0"),
    ({"batch_size": 10**12}, "batch_size", "The 'batch_size' parameter must be an integer from 1 to 65536"),
    ({"workers": -1}, "workers", "The 'workers' parameter must be an integer from 1 to 1024"),
    ({"image_size": 0}, "image_size", "The 'image_size' parameter must be a number of pixels from 1 to 4096"),
    ({"image_size": 10000}, "image_size", "The 'image_size' parameter must be a number of pixels from 1 to 4096"),
    ({"seed": -1}, "seed", "The 'seed' parameter must be an integer from 0 to 4294967295; got -1"),
    ({"seed": 2**32}, "seed", "The 'seed' parameter must be an integer from 0 to 4294967295; got 4294967296"),
    ({"preprocess": "imagenet"}, "preprocess", "The 'preprocess' parameter must be one of caffe, tf, torch, none"),
])
def test_bad_values_are_value_errors_naming_the_python_parameter(kwargs, param, match):
    with pytest.raises(ValueError, match=match) as raised:
        EmbedOptions(**kwargs)
    assert isinstance(raised.value, OptionError) and raised.value.param == param
    assert "--" not in str(raised.value)


def test_resolving_names_the_parameter_and_the_builtin(tmp_path):
    with pytest.raises(ValueError, match="The 'backbone' parameter: unknown backbone 'Xceptoin'. Did you mean Xception"):
        EmbedOptions("Xceptoin").resolve()
    with pytest.raises(FileNotFoundError, match="The 'backbone' parameter: no such .keras model file") as raised:
        EmbedOptions(str(tmp_path / "gone.keras")).resolve()
    assert isinstance(raised.value, MissingFileError) and isinstance(raised.value, FeatxError)
    with pytest.raises(ValueError, match="Drop the 'preprocess' parameter"):
        EmbedOptions("Xception", weights="none", preprocess="caffe").resolve()
    with pytest.raises(FileNotFoundError, match="The 'data' parameter: .* does not exist"):
        featx.embed(tmp_path / "nowhere")


def test_the_cli_names_the_same_error_by_its_flag():
    error = OptionError("{param} must be one of avg, max; got 'mean'.", param="pooling")
    assert str(error) == "The 'pooling' parameter must be one of avg, max; got 'mean'."
    assert error.render(lambda name: "--" + name) == "--pooling must be one of avg, max; got 'mean'."
    from featx.cli.app import flag_names

    flags = flag_names(embed_command)
    assert flags["data"] == "DATA" and flags["image_size"] == "--image-size" and flags["backbone"] == "--backbone"
    assert flags["as_json"] == "--json" and flags["no_wait"] == "--no-wait"


def test_embedder_validates_in_fit_and_knows_its_width_before_transform():
    embedder = Embedder("MobileNetV2", pooling="mean")
    with pytest.raises(ValueError, match="'pooling' parameter"):
        embedder.fit(["a.png"])
    fitted = Embedder("MobileNetV2", weights="none", image_size=32).fit(["a.png", "b.png"])
    assert fitted.feature_dim_ == 1280
    names = fitted.get_feature_names_out()
    assert len(names) == 1280 and names[0] == "mobilenetv20"
    assert not hasattr(fitted, "n_features_in_")
    with pytest.raises(ValueError, match="'X' parameter must be a sequence of image file paths"):
        Embedder().fit(np.zeros((3, 4)))


@parametrize_with_checks([Embedder(weights="none", image_size=32)])
def test_embedder_follows_the_estimator_contract(estimator, check):
    # scikit-learn runs only the checks that fit an estimator taking file paths (cloning, params).
    check(estimator)


def test_embedder_contract_by_hand():
    from sklearn.base import clone
    from sklearn.exceptions import NotFittedError

    embedder = Embedder("ResNet50", weights="none", image_size=32, batch_size=8)
    copy = clone(embedder)
    assert copy.get_params() == embedder.get_params() and not hasattr(copy, "config_")
    with pytest.raises(NotFittedError):
        embedder.transform(["a.png"])
    assert embedder.fit(["a.png"]) is embedder
    assert embedder.config_.backbone == "ResNet50" and embedder.options_.batch_size == 8
    assert clone(embedder).get_params() == embedder.get_params() and not hasattr(clone(embedder), "config_")
