"""The backbone side of embedding fast: mixed precision, the batch size chosen on a GPU (out of
memory injected here), and the next batch copied to the device while this one computes."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from featx.engine.extractor import FeatureExtractor, choose_batch_size, is_out_of_memory
from featx.errors import FeatxError


class ResourceExhaustedError(Exception):
    """What TensorFlow raises when the GPU is full (the name is what counts)."""


def test_the_batch_size_is_the_largest_that_fits_halving_on_out_of_memory():
    tried = []

    def compiled(size):
        tried.append(size)
        if size > 96:
            raise ResourceExhaustedError("OOM when allocating tensor")
        return f"forward for {size}"

    assert choose_batch_size(compiled, largest=512) == (64, "forward for 64")
    assert tried == [512, 256, 128, 64]
    assert is_out_of_memory(RuntimeError("RESOURCE_EXHAUSTED: Out of memory while trying to allocate"))
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_out_of_memory(ValueError("Input 0 of layer is incompatible"))


def test_other_errors_and_no_fit_at_all_are_not_swallowed():
    def broken(size):
        raise ValueError("a real bug")

    with pytest.raises(ValueError, match="a real bug"):
        choose_batch_size(broken)

    def never_fits(size):
        raise ResourceExhaustedError("OOM")

    with pytest.raises(FeatxError, match="does not fit in the device's memory even one image at a time"):
        choose_batch_size(never_fits, largest=8)


def _fake_extractor(put):
    """The real stream and padding logic, with a stand-in forward pass and device copy."""
    extractor = FeatureExtractor.__new__(FeatureExtractor)
    extractor.batch_size = 4
    extractor._dispatch = lambda images: np.asarray(images)[:, 0, 0, :].copy()
    extractor._to_host = np.asarray
    extractor._put = put
    return extractor


@pytest.mark.parametrize("put", [None, np.array], ids=["cpu", "device-copy"])
def test_stream_pairs_each_key_with_its_own_vectors_even_when_buffers_are_reused(put):
    buffer = np.zeros((4, 2, 2, 3), np.float32)

    def batches():  # like decode_batches: one buffer, refilled once the next batch is asked for
        for key, count in (("a", 4), ("b", 3), ("c", 0), ("d", 2)):
            buffer[:] = ord(key)
            yield key, buffer[:count]

    out = list(_fake_extractor(put).stream(batches()))
    assert [key for key, _ in out] == ["a", "b", "c", "d"]
    for key, vectors in out:
        assert vectors.dtype == np.float32 and vectors.shape[1] == 3
        assert np.all(vectors == ord(key))
    assert [len(v) for _, v in out] == [4, 3, 0, 2]


_PRECISION_SCRIPT = """
import json, sys, numpy as np
from featx.engine.extractor import FeatureExtractor
from featx.options import EmbedOptions
images = np.random.default_rng(0).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
out = {}
for precision in sys.argv[1:]:
    config = EmbedOptions("VGG16", weights="none", image_size=32, precision=precision).resolve()
    vectors = FeatureExtractor(config, batch_size=4)(images)
    out[precision] = {"fingerprint": config.fingerprint, "dtype": str(vectors.dtype), "vectors": vectors.tolist()}
import keras
out["policy_after"] = keras.config.dtype_policy().name
print(json.dumps(out))
"""


@pytest.mark.integration  # builds VGG16 (random weights, 32 px) on each backend
@pytest.mark.parametrize("backend,precisions", [("tensorflow", ("bfloat16", "float16")), ("jax", ("bfloat16",))])
def test_mixed_precision_vectors_are_close_to_float32_and_never_share_a_fingerprint(backend, precisions):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed (pip install 'featx[{backend}]')")
    env = {**os.environ, "KERAS_BACKEND": backend}
    result = subprocess.run([sys.executable, "-c", _PRECISION_SCRIPT, "float32", *precisions], env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out.pop("policy_after") == "float32"  # Keras' global policy is restored
    reference = np.asarray(out["float32"]["vectors"])
    assert np.abs(reference).max() > 1e-3  # numbers that a low precision could get wrong
    for precision in precisions:
        tolerance = {"bfloat16": 1e-2, "float16": 2e-3}[precision]
        vectors = np.asarray(out[precision]["vectors"])
        assert out[precision]["dtype"] == "float32"
        relative = np.linalg.norm(vectors - reference) / np.linalg.norm(reference)
        assert 0 < relative < tolerance, (precision, relative)
    assert len({entry["fingerprint"] for entry in out.values()}) == 1 + len(precisions)
