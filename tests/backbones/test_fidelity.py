"""featx's vector for an image equals the Keras recipe computed by hand, for every preprocessing
family: Resizing → the module's preprocess_input → the model, with weights from a saved file."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import featx
from tests.imagegen import write_image

pytestmark = pytest.mark.integration  # embeds with Keras backbones

FAMILIES = [  # one backbone of each preprocessing family: (name, keras module, mode)
    ("VGG16", "vgg16", "caffe"),
    ("MobileNetV2", "mobilenet_v2", "tf"),
    ("DenseNet121", "densenet", "torch"),
    ("EfficientNetB0", "efficientnet", "none"),
]
SIZE = 32


CASES = [(*family, "stretch") for family in FAMILIES] + [
    ("MobileNetV2", "mobilenet_v2", "tf", "crop"),
    ("MobileNetV2", "mobilenet_v2", "tf", "pad"),
]


@pytest.mark.parametrize("name,module,mode,resize", CASES)
def test_vector_equals_keras_by_hand(tmp_path, cache_dir, name, module, mode, resize):
    import keras

    keras.utils.set_random_seed(7)
    reference = getattr(keras.applications, name)(
        include_top=False, weights=None, input_shape=(SIZE, SIZE, 3), pooling="avg"
    )
    weights_file = tmp_path / f"{name}.weights.h5"
    reference.save_weights(weights_file)
    image_path = write_image(tmp_path / "images" / "photo.png", size=(50, 38), seed=3)

    features = featx.embed(tmp_path / "images", name, weights=str(weights_file), image_size=SIZE, resize=resize)

    pixels = np.asarray(Image.open(image_path).convert("RGB"), dtype=np.float32)
    resized = keras.layers.Resizing(
        SIZE, SIZE, crop_to_aspect_ratio=(resize == "crop"), pad_to_aspect_ratio=(resize == "pad")
    )(pixels)
    batch = getattr(keras.applications, module).preprocess_input(np.array(resized)[None].copy())
    expected = np.asarray(reference(batch, training=False))

    assert features.config["preprocessing"] == mode
    assert features.config["weights"].startswith(f"{name}.weights.h5:sha256:")
    np.testing.assert_allclose(features.X, expected, rtol=1e-5, atol=1e-5)
