"""Every curated keras-hub row builds (random weights, ``--weights none``) with the documented
feature width of its default pooling and the documented parameter count, as the Keras rows are checked."""

from __future__ import annotations

import importlib.util

import pytest

from featx.backbones.hub_table import HUB_BACKBONES
from featx.options import EmbedOptions

GIANT_PARAMS = 40_000_000  # as tests/backbones/test_backbones.py: larger ones run with --run-slow


def _cases():
    for name, spec in HUB_BACKBONES.items():
        yield pytest.param(name, marks=[pytest.mark.slow] if spec.params > GIANT_PARAMS else [])


@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("keras_hub") is None, reason='pip install "featx[hub]"')
@pytest.mark.parametrize("name", list(_cases()))
def test_every_hub_backbone_builds_with_documented_widths_and_parameters(name):
    import keras

    from featx.backbones.build import build_backbone

    spec = HUB_BACKBONES[name]
    try:  # one build, at the default pooling (the others' widths: tests/backbones/test_hub_fidelity.py)
        model = build_backbone(EmbedOptions(name, weights="none").resolve())
        assert model.output_shape == (None, spec.feature_dims[spec.default_pooling])
        assert model.input_shape == (None, spec.input_size, spec.input_size, 3)
        assert model.count_params() == spec.params
        assert not model.trainable
    finally:
        keras.backend.clear_session()


@pytest.mark.integration
@pytest.mark.skipif(importlib.util.find_spec("keras_hub") is None, reason='pip install "featx[hub]"')
def test_unfreezing_counts_transformer_blocks_and_brings_the_final_layernorm():
    from featx.backbones.build import build_backbone
    from featx.backbones.unfreeze import transformer_blocks, unfreeze_top_blocks

    model = build_backbone(EmbedOptions("dinov2_small", weights="none", image_size=28).resolve())
    blocks = transformer_blocks(model)
    assert len(blocks) == 12 and not model.trainable_weights
    assert unfreeze_top_blocks(model, 2) == 2
    trainable = {id(v) for v in model.trainable_weights}
    assert trainable == {id(v) for layer in blocks[-2:] for v in layer.weights} | {
        id(v) for v in model.get_layer("dinov2_backbone").get_layer("layernorm").weights}
