"""The registry of Keras ImageNet backbones, as data.

Each entry bundles what must travel together for features to be right: the constructor, the
family's own ``preprocess_input``, the native input size and the pooled feature width. Getting any
of these wrong does not crash, it silently produces worse features, so they live in one table that
the tests build entry by entry. Nothing here imports TensorFlow.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from featx.errors import OptionError, OptionTypeError

DEFAULT_BACKBONE = "MobileNetV2"  # small, fast on a CPU, good features

PREPROCESSING_MODES = ("caffe", "tf", "torch", "none")
"""caffe: RGB→BGR and ImageNet mean subtraction; tf: scale to [-1, 1]; torch: scale to [0, 1] then
ImageNet mean/std; none: the model takes raw 0–255 RGB and rescales inside."""


@dataclass(frozen=True)
class BackboneSpec:
    """One Keras application: how to build it and how to feed it."""

    name: str  # the keras.applications constructor, e.g. "Xception"
    module: str  # the keras.applications submodule that holds its preprocess_input
    input_size: int  # native (ImageNet) input size, square
    feature_dim: int  # width of the pooled feature vector
    preprocessing: str  # one of PREPROCESSING_MODES, what `module.preprocess_input` does
    params: int  # parameter count of the headless model (include_top=False)
    min_input_size: int = 32  # smallest input Keras accepts for this architecture
    wrong_on: tuple[str, ...] = ()  # Keras backends that compute this model wrongly: refused there


def _family(module: str, preprocessing: str, min_size: int, rows: list[tuple[str, int, int, int]],
            wrong_on: tuple[str, ...] = ()):
    return [BackboneSpec(n, module, size, dim, preprocessing, params, min_size, wrong_on)
            for n, size, dim, params in rows]


# name, native input size, feature width, parameters (include_top=False, checked by the tests)
_BACKBONES: list[BackboneSpec] = [
    *_family("convnext", "none", 32, [
        ("ConvNeXtTiny", 224, 768, 27_820_128),
        ("ConvNeXtSmall", 224, 768, 49_454_688),
        ("ConvNeXtBase", 224, 1024, 87_566_464),
        ("ConvNeXtLarge", 224, 1536, 196_230_336),
        ("ConvNeXtXLarge", 224, 2048, 348_147_968),
    ]),
    *_family("densenet", "torch", 32, [
        ("DenseNet121", 224, 1024, 7_037_504),
        ("DenseNet169", 224, 1664, 12_642_880),
        ("DenseNet201", 224, 1920, 18_321_984),
    ]),
    *_family("efficientnet", "none", 32, [
        ("EfficientNetB0", 224, 1280, 4_049_571),
        ("EfficientNetB1", 240, 1280, 6_575_239),
        ("EfficientNetB2", 260, 1408, 7_768_569),
        ("EfficientNetB3", 300, 1536, 10_783_535),
        ("EfficientNetB4", 380, 1792, 17_673_823),
        ("EfficientNetB5", 456, 2048, 28_513_527),
        ("EfficientNetB6", 528, 2304, 40_960_143),
        ("EfficientNetB7", 600, 2560, 64_097_687),
    ]),
    *_family("efficientnet_v2", "none", 32, [
        ("EfficientNetV2B0", 224, 1280, 5_919_312),
        ("EfficientNetV2B1", 240, 1280, 6_931_124),
        ("EfficientNetV2B2", 260, 1408, 8_769_374),
        ("EfficientNetV2B3", 300, 1536, 12_930_622),
        ("EfficientNetV2S", 384, 1280, 20_331_360),
        ("EfficientNetV2M", 480, 1280, 53_150_388),
        ("EfficientNetV2L", 480, 1280, 117_746_848),
    ]),
    *_family("inception_resnet_v2", "tf", 75, [("InceptionResNetV2", 299, 1536, 54_336_736)]),
    *_family("inception_v3", "tf", 75, [("InceptionV3", 299, 2048, 21_802_784)]),
    *_family("mobilenet", "tf", 32, [("MobileNet", 224, 1024, 3_228_864)]),
    *_family("mobilenet_v2", "tf", 32, [("MobileNetV2", 224, 1280, 2_257_984)]),
    *_family("mobilenet_v3", "none", 32, [
        ("MobileNetV3Small", 224, 576, 939_120),
        ("MobileNetV3Large", 224, 960, 2_996_352),
    ]),
    *_family("nasnet", "tf", 32, [
        ("NASNetLarge", 331, 4032, 84_916_818),
        ("NASNetMobile", 224, 1056, 4_269_716),
    ], wrong_on=("torch",)),  # Keras' torch backend computes NASNet wrongly (a known Keras bug)
    *_family("resnet", "caffe", 32, [
        ("ResNet50", 224, 2048, 23_587_712),
        ("ResNet101", 224, 2048, 42_658_176),
        ("ResNet152", 224, 2048, 58_370_944),
    ]),
    *_family("resnet_v2", "tf", 32, [
        ("ResNet50V2", 224, 2048, 23_564_800),
        ("ResNet101V2", 224, 2048, 42_626_560),
        ("ResNet152V2", 224, 2048, 58_331_648),
    ]),
    *_family("vgg16", "caffe", 32, [("VGG16", 224, 512, 14_714_688)]),
    *_family("vgg19", "caffe", 32, [("VGG19", 224, 512, 20_024_384)]),
    *_family("xception", "tf", 71, [("Xception", 299, 2048, 20_861_480)]),
]

BACKBONES: dict[str, BackboneSpec] = {spec.name: spec for spec in _BACKBONES}
_BY_LOWER = {name.lower(): spec for name, spec in BACKBONES.items()}


def list_backbones(pattern: str | None = None) -> list[str]:
    """Registered backbone names, optionally only those containing ``pattern`` (case-insensitive)."""
    names = sorted(BACKBONES)
    if pattern:
        names = [n for n in names if pattern.lower() in n.lower()]
    return names


def get_backbone(name: str) -> BackboneSpec:
    """The registry entry for ``name`` (case-insensitive); unknown names suggest close matches."""
    if not isinstance(name, str):
        raise OptionTypeError(f"{{param}} must be a backbone name or a .keras file path (str); got {name!r:.60}.",
                              param="backbone")
    spec = _BY_LOWER.get(name.lower())
    if spec is not None:
        return spec
    close = difflib.get_close_matches(name.lower(), list(_BY_LOWER), n=3, cutoff=0.5)
    hint = f" Did you mean {', '.join(_BY_LOWER[c].name for c in close)}?" if close else ""
    raise OptionError(
        f"{{param}}: unknown backbone {name!r}.{hint} Run 'featx backbones' for the list, "
        "or pass a path to a .keras model.", param="backbone",
    )


# --- Transformer backbones through keras-hub (pip install "featx[hub]") ---------------------------

"""cls: the class token; avg: the mean of the patch tokens (class and register tokens left out);
cls+avg: both, concatenated (the DINOv2 linear-probe recipe); pooled: the model's own image
embedding (SigLIP's attention pooling, CLIP's projected class token). All from the tokens after the
final LayerNorm."""


