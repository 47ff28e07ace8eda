"""The Ray engine's one-line failures, before any worker starts: Ray missing, a cluster not reachable,
its options given without it. Fast: no Ray instance, no TensorFlow."""

from __future__ import annotations

import socket
import sys

import pytest
from typer.testing import CliRunner

import featx
from featx.cli import app
from featx.errors import ClusterError, MissingDependencyError, OptionError
from featx.options import EmbedOptions
from tests.imagegen import make_class_folder

runner = CliRunner()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # nothing listens there once closed


def test_without_ray_the_engine_says_which_extra_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed
    monkeypatch.setattr("importlib.util.find_spec", lambda name, *a: None if name == "ray" else object())
    with pytest.raises(MissingDependencyError, match=r'pip install "featx\[ray\]"') as raised:
        EmbedOptions(engine="ray")
    assert raised.value.param == "engine" and isinstance(raised.value, ImportError)
    from featx.engine.ray import import_ray

    with pytest.raises(MissingDependencyError, match=r'pip install "featx\[ray\]"'):
        import_ray()
    data = make_class_folder(tmp_path / "data", per_class=1)
    result = runner.invoke(app, ["embed", str(data), "--engine", "ray"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        'error: --engine is ray, which needs Ray Data (not installed): pip install "featx[ray]"']


def test_an_unreachable_cluster_is_one_line_naming_its_address(tmp_path):
    pytest.importorskip("ray")
    import ray

    if ray.is_initialized():  # pragma: no cover - another module left Ray running
        pytest.skip("Ray is already initialised in this process")
    data = make_class_folder(tmp_path / "data", per_class=1)
    address = f"127.0.0.1:{_closed_port()}"
    with pytest.raises(ClusterError, match=f"Cannot reach the Ray cluster at {address} .*; check the 'address'"):
        featx.embed(data, weights="none", image_size=32, engine="ray", address=address, cache=tmp_path / "c")
    result = runner.invoke(app, ["embed", str(data), "--weights", "none", "--image-size", "32",
                                 "--engine", "ray", "--address", f"ray://{address}", "--cache", str(tmp_path / "c")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and f"Cannot reach the Ray cluster at ray://{address}" in lines[0]
    assert "--address" in lines[0]
    assert not ray.is_initialized()


@pytest.mark.parametrize("kwargs,param", [
    ({"address": "ray://head:10001"}, "address"),
    ({"gpus_per_worker": 1}, "gpus_per_worker"),
    ({"engine": "spark"}, "engine"),
    ({"engine": "ray", "gpus_per_worker": -1}, "gpus_per_worker"),
])
def test_ray_options_are_checked_and_named(kwargs, param):
    if kwargs.get("engine") == "ray":
        pytest.importorskip("ray")
    with pytest.raises(OptionError) as raised:
        EmbedOptions(**kwargs)
    assert raised.value.param == param


def test_the_engine_does_not_change_the_fingerprint():
    base = EmbedOptions("MobileNetV2", weights="none", image_size=32)
    ray_options = EmbedOptions("MobileNetV2", weights="none", image_size=32, engine="local", workers=8)
    assert base.resolve().fingerprint == ray_options.resolve().fingerprint
    assert "engine" in {f for f in base.run_options().__dataclass_fields__}


def test_a_featx_error_raised_on_a_worker_is_raised_as_itself():
    # An actor that dies in its constructor reaches the driver as Ray's text only (ActorDiedError).
    from featx.engine.ray import _featx_cause
    from featx.errors import WeightsUnavailableError

    died = RuntimeError("The actor died because of an error raised in its creation task\nTraceback (most recent "
                        "call last):\n  ...\nfeatx.errors.WeightsUnavailableError: Could not download the weights.\n")
    cause = _featx_cause(died)
    assert isinstance(cause, WeightsUnavailableError) and str(cause) == "Could not download the weights."
    wrapped = RuntimeError("task failed")
    wrapped.cause = OptionError("{param} is wrong.", param="backend")
    assert _featx_cause(wrapped) is wrapped.cause
    assert _featx_cause(RuntimeError("a Ray failure of its own")) is None
