"""Keras backends: the choice and its errors (no TensorFlow), and the same vectors on JAX and PyTorch
as on TensorFlow for one backbone of every preprocessing family, computed in a subprocess per backend
(Keras fixes its backend once per process) from the same saved weights files."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

import featx
from featx.backend import BACKENDS, import_keras, require_installed, resolve_backend
from featx.errors import MissingDependencyError, OptionError
from featx.options import EmbedOptions
from tests.imagegen import write_image

FAMILIES = ["VGG16", "MobileNetV2", "DenseNet121", "EfficientNetB0"]  # caffe, tf, torch, none (test_fidelity.py)
SIZE = 32
TOLERANCE = 1e-4  # relative to the vector's largest value


def test_a_bad_backend_names_the_parameter():
    with pytest.raises(ValueError, match="The 'backend' parameter must be one of tensorflow, jax, torch; got 'mxnet'"):
        EmbedOptions(backend="mxnet")
    with pytest.raises(OptionError, match="must be one of tensorflow, jax, torch"):
        featx.Embedder(backend="theano").fit(["a.png"])


@pytest.fixture
def keras_not_loaded(monkeypatch):
    """As in a fresh process, before Keras is imported (another test may have imported it)."""
    monkeypatch.delitem(sys.modules, "keras", raising=False)


def test_the_backend_comes_from_the_argument_then_keras_backend(monkeypatch, keras_not_loaded):
    monkeypatch.setenv("KERAS_BACKEND", "jax")
    assert resolve_backend() == "jax"
    assert resolve_backend("torch") == "torch"
    monkeypatch.delenv("KERAS_BACKEND")
    assert resolve_backend() == "tensorflow"
    monkeypatch.setenv("KERAS_BACKEND", "cntk")
    with pytest.raises(OptionError, match="KERAS_BACKEND must be one of tensorflow, jax, torch; got 'cntk'"):
        resolve_backend()


def test_a_missing_backend_says_what_to_install(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ImportError, match=r"The 'backend' parameter jax needs jax, which is not installed: "
                                          r"pip install 'featx\[jax\]'\.") as raised:
        require_installed("jax")
    assert isinstance(raised.value, MissingDependencyError)


def test_random_weights_are_per_backend_in_the_fingerprint(keras_not_loaded):
    # each backend draws random weights with its own generator: their vectors must not share a cache
    tf = EmbedOptions(weights="none", image_size=32, backend="tensorflow").resolve()
    assert tf.weights == "none:seed=0"
    for backend in ("jax", "torch"):
        config = EmbedOptions(weights="none", image_size=32, backend=backend).resolve()
        assert config.weights == f"none:seed=0:backend={backend}" and config.fingerprint != tf.fingerprint


@pytest.mark.integration
def test_another_backend_than_the_running_one_is_one_line(cache_dir):
    keras = import_keras()
    other = next(b for b in BACKENDS if b != keras.backend.backend())
    with pytest.raises(OptionError, match=f"is '{other}', but Keras already runs on '{keras.backend.backend()}' "
                                          f"in this process .* KERAS_BACKEND={other}"):
        import_keras(other)


def test_nasnet_is_refused_on_torch():
    from featx.backbones.applications import get_backbone
    from featx.backbones.build import check_runs_on

    with pytest.raises(OptionError, match="Keras computes NASNetMobile wrongly on torch .* run it on tensorflow or jax"):
        check_runs_on(get_backbone("NASNetMobile"), "torch")
    check_runs_on(get_backbone("NASNetMobile"), "jax")


_EMBED_ELSEWHERE = """
import json, sys
import numpy as np
import featx
args = json.loads(sys.argv[1])
for name, weights in args["weights"].items():
    cache = args["shared_cache"] if name == args["shared"] else args["cache"]
    features = featx.embed(args["data"], name, weights=weights, image_size=args["size"], cache=cache, batch_size=2)
    order = np.argsort(features.paths)
    np.save(f"{args['out']}/{name}.npy", features.X[order])
    print(name, features.report.embedded, features.report.reused)
assert "tensorflow" not in sys.modules, "TensorFlow was imported on " + args["backend"]
"""


@pytest.fixture(scope="module")
def tensorflow_vectors(tmp_path_factory):
    """Weights files, images and TensorFlow's vectors; the shared cache holds all but one image."""
    import keras

    root = tmp_path_factory.mktemp("backends")
    weights = {}
    for name in FAMILIES:
        keras.utils.set_random_seed(7)
        model = getattr(keras.applications, name)(include_top=False, weights=None, input_shape=(SIZE, SIZE, 3),
                                                  pooling="avg")
        weights[name] = str(root / f"{name}.weights.h5")
        model.save_weights(weights[name])
    data = root / "images"
    for i, size in enumerate([(50, 38), (32, 32), (20, 64)]):
        write_image(data / f"photo{i}.png", size=size, seed=i)
    vectors = {}
    for name in FAMILIES:
        features = featx.embed(data, name, weights=weights[name], image_size=SIZE, cache=root / "tf-cache")
        vectors[name] = features.X[np.argsort(features.paths)]
    (data / "photo2.png").rename(root / "photo2.png")  # the other backend embeds it into the shared cache
    featx.embed(data, FAMILIES[1], weights=weights[FAMILIES[1]], image_size=SIZE, cache=root / "shared")
    (root / "photo2.png").rename(data / "photo2.png")
    return root, data, weights, vectors


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_vectors_on_every_backend_equal_tensorflows(tmp_path, tensorflow_vectors, backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install 'featx[{backend}]')")
    root, data, weights, expected = tensorflow_vectors
    shared = tmp_path / "shared"
    shutil.copytree(root / "shared", shared)
    args = {"backend": backend, "weights": weights, "data": str(data), "size": SIZE, "cache": str(tmp_path / "cache"),
            "shared": FAMILIES[1], "shared_cache": str(shared), "out": str(tmp_path)}
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, "-c", _EMBED_ELSEWHERE, json.dumps(args)], env=env, capture_output=True,
                          text=True, timeout=280)
    assert done.returncode == 0, done.stderr[-3000:]
    for name in FAMILIES:
        vectors = np.load(tmp_path / f"{name}.npy")
        scale = np.abs(expected[name]).max(axis=1, keepdims=True)
        error = (np.abs(vectors - expected[name]) / scale).max()
        assert error <= TOLERANCE, f"{name} on {backend}: {error:.2e} relative to TensorFlow"
    assert f"{FAMILIES[1]} 1 2" in done.stdout  # the shared cache: two vectors of TensorFlow reused, one added
    from featx.cache.catalog import find_caches

    (summary,) = find_caches(shared)
    assert summary.backends == tuple(sorted(["tensorflow", backend]))
