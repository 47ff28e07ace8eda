"""The registry, entry by entry: every backbone builds, has the documented width and parameter
count, and is fed by its own family's preprocessing."""

from __future__ import annotations

import numpy as np
import pytest

from featx.backbones.applications import BACKBONES, PREPROCESSING_MODES, get_backbone, list_backbones
from featx.errors import OptionError
from featx.options import EmbedOptions

KERAS_APPLICATIONS = {
    *(f"ConvNeXt{s}" for s in ("Tiny", "Small", "Base", "Large", "XLarge")),
    "DenseNet121", "DenseNet169", "DenseNet201",
    *(f"EfficientNetB{i}" for i in range(8)),
    *(f"EfficientNetV2{s}" for s in ("B0", "B1", "B2", "B3", "S", "M", "L")),
    "InceptionResNetV2", "InceptionV3", "MobileNet", "MobileNetV2", "MobileNetV3Small",
    "MobileNetV3Large", "NASNetLarge", "NASNetMobile", "ResNet50", "ResNet101", "ResNet152",
    "ResNet50V2", "ResNet101V2", "ResNet152V2", "VGG16", "VGG19", "Xception",
}
RESCALE_INSIDE = ("ConvNeXt", "EfficientNet", "MobileNetV3")  # preprocess_input is a no-op
NATIVE_SIZES = {"Xception": 299, "InceptionV3": 299, "InceptionResNetV2": 299, "NASNetLarge": 331,
                "EfficientNetB3": 300, "EfficientNetB7": 600, "EfficientNetV2S": 384, "MobileNetV2": 224}


def test_registry_holds_all_forty_keras_applications():
    assert set(list_backbones()) == KERAS_APPLICATIONS
    assert len(BACKBONES) == 40


@pytest.mark.parametrize("name", sorted(NATIVE_SIZES))
def test_native_input_sizes(name):
    assert get_backbone(name).input_size == NATIVE_SIZES[name]


@pytest.mark.parametrize("name", list_backbones())
def test_documented_preprocessing_family(name):
    spec = get_backbone(name)
    assert spec.preprocessing in PREPROCESSING_MODES
    if name.startswith(RESCALE_INSIDE):
        assert spec.preprocessing == "none"
    elif name.startswith(("ResNet", "VGG")) and not name.endswith("V2"):
        assert spec.preprocessing == "caffe"
    elif name.startswith("DenseNet"):
        assert spec.preprocessing == "torch"
    else:
        assert spec.preprocessing == "tf"


def test_lookup_is_case_insensitive_and_suggests_close_names():
    assert get_backbone("xception").name == "Xception"
    assert get_backbone("MOBILENETV2").name == "MobileNetV2"
    with pytest.raises(OptionError, match="Did you mean Xception"):
        get_backbone("Xceptoin")
    with pytest.raises(OptionError, match="featx backbones"):
        get_backbone("nothing-like-it")
    assert list_backbones("efficientnetv2") == sorted(n for n in KERAS_APPLICATIONS if "EfficientNetV2" in n)


def _expected_preprocessing(mode: str, x: np.ndarray) -> np.ndarray:
    """Each family's preprocess_input written out by hand, for raw 0-255 RGB."""
    if mode == "none":
        return x
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "torch":
        return (x / 255.0 - np.array([0.485, 0.456, 0.406])) / np.array([0.229, 0.224, 0.225])
    return x[..., ::-1] - np.array([103.939, 116.779, 123.68])  # caffe: BGR, mean subtracted


@pytest.mark.integration
@pytest.mark.parametrize("name", list_backbones())
def test_preprocessing_of_every_entry(name):
    """The layers featx runs equal the entry's own keras.applications preprocess_input."""
    import keras

    from featx.backbones.preprocessing import preprocess, preprocessing_layers

    spec = get_backbone(name)
    config = EmbedOptions(name, weights="none").resolve()
    x = np.random.default_rng(0).uniform(0, 255, (2, 4, 4, 3)).astype(np.float32)
    out = np.asarray(preprocess(preprocessing_layers(config.preprocessing), x.copy()))
    keras_own = np.asarray(getattr(keras.applications, spec.module).preprocess_input(x.copy()))
    np.testing.assert_allclose(out, keras_own, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(out, _expected_preprocessing(spec.preprocessing, x), rtol=1e-5, atol=1e-4)


GIANT_PARAMS = 40_000_000  # building these takes 5-30 s each on a laptop CPU: run with --run-slow


def _build_cases():
    for name in list_backbones():
        marks = [pytest.mark.slow] if get_backbone(name).params > GIANT_PARAMS else []
        yield pytest.param(name, marks=marks)


@pytest.mark.integration
@pytest.mark.parametrize("name", list(_build_cases()))
def test_every_backbone_builds_with_documented_width_and_parameters(name):
    import keras

    from featx.backbones.build import build_backbone

    spec = get_backbone(name)
    model = build_backbone(EmbedOptions(name, weights="none", image_size=max(spec.min_input_size, 32)).resolve())
    try:
        assert model.output_shape == (None, spec.feature_dim)
        assert model.count_params() == spec.params
        assert not model.trainable
    finally:
        del model
        keras.backend.clear_session()


def test_input_size_below_the_architecture_minimum_is_a_clear_error():
    with pytest.raises(OptionError, match="at least 71"):
        EmbedOptions("Xception", weights="none", image_size=64).resolve()


def test_preprocess_option_is_for_custom_backbones_only():
    with pytest.raises(OptionError, match="own 'tf' preprocessing"):
        EmbedOptions("Xception", weights="none", preprocess="caffe").resolve()
