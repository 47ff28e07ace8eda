"""Fine-tuning's two rates (the head faster than the backbone) and WiSE-FT weight averaging."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest

from featx.errors import OptionError
from featx.model.rates import check_rates, interpolate


def test_interpolate_averages_float_weights_and_leaves_the_rest():
    start = [np.zeros((2, 2), np.float32), np.array([1.0, 2.0]), np.array([7], np.int64)]
    end = [np.full((2, 2), 4.0, np.float32), np.array([3.0, 6.0]), np.array([9], np.int64)]
    mixed = interpolate(start, end, 0.25)
    np.testing.assert_allclose(mixed[0], np.full((2, 2), 1.0))
    np.testing.assert_allclose(mixed[1], [1.5, 3.0])
    assert mixed[0].dtype == np.float32 and mixed[2].tolist() == [9]  # a seed's state is not averaged
    for alpha, expected in ((0.0, start[:2]), (1.0, end[:2])):
        for got, want in zip(interpolate(start, end, alpha), expected):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("kwargs,param", [
    ({"learning_rate": 0.0}, "learning_rate"), ({"learning_rate": -1e-4}, "learning_rate"),
    ({"head_learning_rate": 0.0}, "head_learning_rate"), ({"head_learning_rate": -1.0}, "head_learning_rate"),
    ({"head_learning_rate": float("nan")}, "head_learning_rate"),
    ({"wise": -0.1}, "wise"), ({"wise": 1.5}, "wise"),
])
def test_bad_rates_and_shares_are_value_errors_naming_the_parameter(kwargs, param):
    values = {"learning_rate": 1e-4, "head_learning_rate": None, "wise": 1.0, **kwargs}
    with pytest.raises(ValueError, match=param) as raised:
        check_rates(**values)
    assert isinstance(raised.value, OptionError) and raised.value.param == param
    check_rates(1e-4, None, 0.0)  # the edges are fine
    check_rates(1e-4, 1e-3, 1.0)


_ONE_STEP = """
import sys
import numpy as np
import keras
from featx.model.rates import two_rate_adam

keras.utils.set_random_seed(0)
inputs = keras.Input((4,))
body = keras.layers.Dense(3, name="body")
head = keras.layers.Dense(2, name="featx_head")
model = keras.Model(inputs, head(body(inputs)))
rate, factor = 1e-3, float(sys.argv[1])
model.compile(two_rate_adam(keras, rate, head.trainable_variables, factor), "mse")
x, y = np.random.default_rng(0).normal(size=(8, 4)).astype("float32"), np.ones((8, 2), "float32")
start = [np.array(w) for w in model.get_weights()]
model.train_on_batch(x, y)
steps = [np.abs(np.array(w) - s).max() for w, s in zip(model.get_weights(), start)]
print("steps", *steps)
"""


def _steps(factor: float, backend: str) -> list[float]:
    """The largest change of each weight (body kernel, bias, head kernel, bias) after one Adam step."""
    env = {**os.environ, "KERAS_BACKEND": backend}
    done = subprocess.run([sys.executable, "-c", _ONE_STEP, str(factor)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return [float(v) for v in done.stdout.split("steps", 1)[1].split()]


@pytest.mark.integration
@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_the_head_steps_at_its_own_rate_on_every_backend(backend):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"pip install 'featx[{backend}]'")
    # Adam's first step moves each weight by the rate (m / sqrt(v) = sign of the gradient)
    body_kernel, body_bias, head_kernel, head_bias = _steps(10.0, backend)
    assert body_kernel == pytest.approx(1e-3, rel=1e-2) and body_bias == pytest.approx(1e-3, rel=1e-2)
    assert head_kernel == pytest.approx(1e-2, rel=1e-2) and head_bias == pytest.approx(1e-2, rel=1e-2)
    assert _steps(1.0, backend)[2] == pytest.approx(1e-3, rel=1e-2)  # factor 1: one rate, as plain Adam
