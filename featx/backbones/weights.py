"""The ImageNet weights files Keras downloads, as data, and how to install them offline.

Keras fetches each backbone's *no-top* weights file (``include_top=False``; pooling does not change
the file) into ``$KERAS_HOME/models`` and checks it against a hash when it has one. Behind a
firewall that download fails; this table says which file each backbone needs and where it comes
from, and :func:`import_weights` verifies a file fetched elsewhere and puts it where Keras looks.
The facts are copied from Keras' own source (``keras/src/applications``); the tests cross-check
them, so a Keras upgrade that changes a file fails them. Nothing here imports TensorFlow or Keras.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from featx.backbones.applications import get_backbone, list_backbones
from featx.backend import keras_cache_dir
from featx.errors import FeatxError, MissingFileError

_KA = "https://storage.googleapis.com/tensorflow/keras-applications/"
_EFFICIENTNET = "https://storage.googleapis.com/keras-applications/"  # EfficientNet B0-B7 only
_NOTOP = "_weights_tf_dim_ordering_tf_kernels_notop.h5"

# backbone: (URL folder, file name in Keras' cache, hash Keras checks or None when it checks none)
_TABLE: dict[str, tuple[str, str, str | None]] = {
    "ConvNeXtTiny": (_KA + "convnext/", "convnext_tiny_notop.h5",
                     "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1"),
    "ConvNeXtSmall": (_KA + "convnext/", "convnext_small_notop.h5",
                      "6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab"),
    "ConvNeXtBase": (_KA + "convnext/", "convnext_base_notop.h5",
                     "40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45"),
    "ConvNeXtLarge": (_KA + "convnext/", "convnext_large_notop.h5",
                      "96f02b6f0753d4f543261bc9d09bed650f24dd6bc02ddde3066135b63d23a1cd"),
    "ConvNeXtXLarge": (_KA + "convnext/", "convnext_xlarge_notop.h5",
                       "de3f8a54174130e0cecdc71583354753d557fcf1f4487331558e2a16ba0cfe05"),
    "DenseNet121": (_KA + "densenet/", "densenet121" + _NOTOP, "30ee3e1110167f948a6b9946edeeb738"),
    "DenseNet169": (_KA + "densenet/", "densenet169" + _NOTOP, "b8c4d4c20dd625c148057b9ff1c1176b"),
    "DenseNet201": (_KA + "densenet/", "densenet201" + _NOTOP, "c13680b51ded0fb44dff2d8f86ac8bb1"),
    "EfficientNetB0": (_EFFICIENTNET, "efficientnetb0_notop.h5", "50bc09e76180e00e4465e1a485ddc09d"),
    "EfficientNetB1": (_EFFICIENTNET, "efficientnetb1_notop.h5", "74c4e6b3e1f6a1eea24c589628592432"),
    "EfficientNetB2": (_EFFICIENTNET, "efficientnetb2_notop.h5", "111f8e2ac8aa800a7a99e3239f7bfb39"),
    "EfficientNetB3": (_EFFICIENTNET, "efficientnetb3_notop.h5", "af6d107764bb5b1abb91932881670226"),
    "EfficientNetB4": (_EFFICIENTNET, "efficientnetb4_notop.h5", "ebc24e6d6c33eaebbd558eafbeedf1ba"),
    "EfficientNetB5": (_EFFICIENTNET, "efficientnetb5_notop.h5", "38879255a25d3c92d5e44e04ae6cec6f"),
    "EfficientNetB6": (_EFFICIENTNET, "efficientnetb6_notop.h5", "9ecce42647a20130c1f39a5d4cb75743"),
    "EfficientNetB7": (_EFFICIENTNET, "efficientnetb7_notop.h5", "cbcfe4450ddf6f3ad90b1b398090fe4a"),
    "EfficientNetV2B0": (_KA + "efficientnet_v2/", "efficientnetv2-b0_notop.h5", "893217f2bb855e2983157299931e43ff"),
    "EfficientNetV2B1": (_KA + "efficientnet_v2/", "efficientnetv2-b1_notop.h5", "0e80663031ca32d657f9caa404b6ec37"),
    "EfficientNetV2B2": (_KA + "efficientnet_v2/", "efficientnetv2-b2_notop.h5", "1dfe2e7a5d45b6632553a8961ea609eb"),
    "EfficientNetV2B3": (_KA + "efficientnet_v2/", "efficientnetv2-b3_notop.h5", "f6abf7b5849ac99a89b50dd3fd532856"),
    "EfficientNetV2S": (_KA + "efficientnet_v2/", "efficientnetv2-s_notop.h5", "af0682fb74e8c54910f2d4393339c070"),
    "EfficientNetV2M": (_KA + "efficientnet_v2/", "efficientnetv2-m_notop.h5", "1b8dc055df72dde80d614482840fe342"),
    "EfficientNetV2L": (_KA + "efficientnet_v2/", "efficientnetv2-l_notop.h5", "b0b66b5c863aef5b46e8608fe1711615"),
    "InceptionResNetV2": (_KA + "inception_resnet_v2/", "inception_resnet_v2" + _NOTOP,
                          "d19885ff4a710c122648d3b5c3b684e4"),
    "InceptionV3": (_KA + "inception_v3/", "inception_v3" + _NOTOP, "bcbd6486424b2319ff4ef7d526e38f63"),
    "MobileNet": (_KA + "mobilenet/", "mobilenet_1_0_{size}_tf_no_top.h5", None),
    "MobileNetV2": (_KA + "mobilenet_v2/",
                    "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{size}_no_top.h5", None),
    "MobileNetV3Small": (_KA + "mobilenet_v3/", "weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
                         "d3e8ec802a04aa4fc771ee12a9a9b836"),
    "MobileNetV3Large": (_KA + "mobilenet_v3/", "weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
                         "07fb09a5933dd0c8eaafa16978110389"),
    "NASNetLarge": (_KA + "nasnet/", "nasnet_large_no_top.h5", "d81d89dc07e6e56530c4e77faddd61b5"),
    "NASNetMobile": (_KA + "nasnet/", "nasnet_mobile_no_top.h5", "1ed92395b5b598bdda52abe5c0dbfd63"),
    "ResNet50": (_KA + "resnet/", "resnet50" + _NOTOP, "4d473c1dd8becc155b73f8504c6f6626"),
    "ResNet101": (_KA + "resnet/", "resnet101" + _NOTOP, "88cf7a10940856eca736dc7b7e228a21"),
    "ResNet152": (_KA + "resnet/", "resnet152" + _NOTOP, "ee4c566cf9a93f14d82f913c2dc6dd0c"),
    "ResNet50V2": (_KA + "resnet/", "resnet50v2" + _NOTOP, "fac2f116257151a9d068a22e544a4917"),
    "ResNet101V2": (_KA + "resnet/", "resnet101v2" + _NOTOP, "c0ed64b8031c3730f411d2eb4eea35b5"),
    "ResNet152V2": (_KA + "resnet/", "resnet152v2" + _NOTOP, "ed17cf2e0169df9d443503ef94b23b33"),
    "VGG16": (_KA + "vgg16/", "vgg16" + _NOTOP, "6d6bbae143d832006294945121d1f1fc"),
    "VGG19": (_KA + "vgg19/", "vgg19" + _NOTOP, "253f8cb515780f3b799900260a226db6"),
    "Xception": (_KA + "xception/", "xception" + _NOTOP, "b0042744bf5b25fce3cb969f33bebb97"),
}
# NASNet's files are saved under another name than the one they are downloaded by.
_URL_NAMES = {"nasnet_large_no_top.h5": "NASNet-large-no-top.h5", "nasnet_mobile_no_top.h5": "NASNet-mobile-no-top.h5"}
# MobileNet(V2) have a file per square input size (featx passes its --image-size); other sizes get 224's.
_SIZES = {"MobileNet": (128, 160, 192, 224), "MobileNetV2": (96, 128, 160, 192, 224)}


@dataclass(frozen=True)
class WeightsFile:
    """The no-top ImageNet weights file Keras fetches for one backbone (at one input size)."""

    backbone: str
    file_name: str  # its name in Keras' cache folder
    url: str
    file_hash: str | None  # what Keras checks the file against; None: Keras checks nothing

    @property
    def algorithm(self) -> str | None:
        """As Keras' ``get_file`` decides: sha256 for a 64-hex hash, md5 for a 32-hex one."""
        return None if self.file_hash is None else "sha256" if len(self.file_hash) == 64 else "md5"

    @property
    def download_name(self) -> str:
        """The name a browser saves the file under (NASNet's differs from ``file_name``)."""
        return self.url.rsplit("/", 1)[-1]


def weights_file(backbone: str, input_size: int | None = None) -> WeightsFile:
    """The file Keras wants for ``backbone`` with ImageNet weights at ``input_size`` (default native)."""
    spec = get_backbone(backbone)
    folder, name, file_hash = _TABLE[spec.name]
    sizes = _SIZES.get(spec.name, ())
    size = input_size if input_size in sizes else 224
    name = name.format(size=size)
    return WeightsFile(spec.name, name, folder + _URL_NAMES.get(name, name), file_hash)


def known_files() -> list[WeightsFile]:
    """Every file in the table, MobileNet(V2)'s at each input size Keras has weights for."""
    return [weights_file(name, size) for name in _TABLE for size in _SIZES.get(name, (None,))]


def weights_dir() -> Path:
    """The folder where Keras looks for (and downloads) weights files; nothing is created."""
    return Path(os.path.expanduser(keras_cache_dir()))


def file_status(entry: WeightsFile, folder: Path | None = None) -> str:
    """``missing``, ``present`` or ``hash mismatch`` (Keras would download it again) in ``folder``."""
    path = (folder or weights_dir()) / entry.file_name
    if not path.is_file():
        return "missing"
    if entry.algorithm is None:
        return "present"
    return "present" if _digests(path, None)[entry.algorithm] == entry.file_hash else "hash mismatch"


def list_weights(pattern: str | None = None, *, input_size: int | None = None) -> list[dict]:
    """One row per backbone matching ``pattern``: its file, URL, hash, and status in Keras' cache."""
    folder = weights_dir()
    rows = []
    for name in list_backbones(pattern):
        entry = weights_file(name, input_size)
        rows.append({
            "backbone": name, "file": entry.file_name, "url": entry.url, "hash": entry.file_hash,
            "algorithm": entry.algorithm, "path": str(folder / entry.file_name),
            "status": file_status(entry, folder),
        })
    return rows


@dataclass(frozen=True)
class Imported:
    """A file installed by :func:`import_weights`: where from, where to, for which backbones."""

    source: Path
    path: Path
    backbones: tuple[str, ...]
    verified: str | None  # the algorithm whose hash matched; None when Keras has no hash to check


def import_weights(
    files: str | os.PathLike | Iterable[str | os.PathLike], *, table: Iterable[WeightsFile] | None = None
) -> list[Imported]:
    """Verify each file against the hash Keras expects and copy it into Keras' cache folder.

    A file is recognised by its name (as saved in the cache or as downloaded), else by its content.
    All files are checked before any is installed, so one bad file installs none; each copy is
    written under a temporary name and renamed. ``table`` replaces :func:`known_files` (for tests).
    """
    entries = list(known_files() if table is None else table)
    sources = [Path(f) for f in ([files] if isinstance(files, (str, os.PathLike)) else files)]
    for source in sources:
        if not source.is_file():
            raise MissingFileError(f"{{param}}: no such file {str(source)!r}.", param="files")
    folder = weights_dir()
    folder.mkdir(parents=True, exist_ok=True)
    temps: list[str] = []
    imported: list[Imported] = []
    try:
        for source in sources:
            fd, temp = tempfile.mkstemp(prefix=".featx-", suffix=".part", dir=folder)
            temps.append(temp)
            with os.fdopen(fd, "wb") as target:
                digests = _digests(source, target)
                target.flush()
                os.fsync(target.fileno())
            os.chmod(temp, 0o644)  # as a download would be, not mkstemp's owner-only 0o600
            imported.append(_identify(source, digests, entries, folder))
        for temp, done in zip(temps, imported):
            os.replace(temp, done.path)
    finally:
        for temp in temps:
            if os.path.exists(temp):
                os.unlink(temp)
    return imported


def _identify(source: Path, digests: dict[str, str], entries: list[WeightsFile], folder: Path) -> Imported:
    """Which table entries ``source`` is, by name then by content; refuse it if none or if it is damaged."""
    named = [e for e in entries if source.name in (e.file_name, e.download_name)]
    matches = named or [e for e in entries if e.file_hash and digests[e.algorithm] == e.file_hash]
    if not matches:
        raise FeatxError(
            f"{source}: neither its name nor its content is a no-top ImageNet weights file of a featx "
            "backbone; 'featx weights list' shows the file each backbone needs and its URL."
        )
    first = matches[0]
    backbones = tuple(sorted({e.backbone for e in matches if e.file_name == first.file_name}))
    if first.algorithm and digests[first.algorithm] != first.file_hash:
        raise FeatxError(
            f"{source}: its {first.algorithm} is {digests[first.algorithm]}, but Keras expects "
            f"{first.file_hash} for {', '.join(backbones)}: the file is incomplete or another version; "
            f"download it again from {first.url}."
        )
    if not first.algorithm and not _holds_weights(source):  # no hash to check: at least real, non-empty HDF5
        raise FeatxError(
            f"{source}: not an HDF5 weights file (an error page saved as .h5, or an empty file?); download it "
            f"again from {first.url}."
        )
    return Imported(source, folder / first.file_name, backbones, first.algorithm)


def _holds_weights(path: Path) -> bool:
    """Whether ``path`` is an HDF5 file holding at least one array (what any Keras weights file is)."""
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            found: list[str] = []
            h5.visititems(lambda name, item: found.append(name) if isinstance(item, h5py.Dataset) else None)
            return bool(found)
    except (OSError, RuntimeError, ValueError):
        return False


def _digests(path: Path, copy_to=None, chunk_size: int = 1 << 20) -> dict[str, str]:
    """md5 and sha256 of ``path`` (the two hashes Keras checks), in one read; each block is also
    written to ``copy_to`` when given."""
    md5, sha256 = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            md5.update(block)
            sha256.update(block)
            if copy_to is not None:
                copy_to.write(block)
    return {"md5": md5.hexdigest(), "sha256": sha256.hexdigest()}
