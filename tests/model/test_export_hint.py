"""The ONNX export's install hint names each thing to install once."""

from __future__ import annotations

import importlib.util

import pytest

from featx.errors import MissingDependencyError
from featx.model.export import export


@pytest.mark.integration  # imports Keras
def test_the_onnx_hint_names_the_extra_once(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name in ("onnx", "tf2onnx") else real(name, *a))
    with pytest.raises(MissingDependencyError) as raised:
        export(tmp_path / "head", tmp_path / "m.onnx", format="onnx", backend="tensorflow")
    message = str(raised.value)
    assert message.count("featx[onnx]") == 1 and "needs onnx and tf2onnx" in message
