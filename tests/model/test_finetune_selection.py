"""Which epoch fine-tuning keeps: the last; with early stopping, the best validation accuracy, not
the lowest validation loss."""

from __future__ import annotations

import json

import numpy as np
import pytest

from featx.model.epochs import epoch_callbacks

pytestmark = pytest.mark.integration  # the callbacks are Keras callbacks: importing Keras imports TensorFlow


class _Model:
    """Stands in for the Keras model: records which epoch's weights were saved."""

    def __init__(self):
        self.epoch = 0

    def save_weights(self, path):
        np.save(str(path) + ".npy", np.asarray([self.epoch]))


def _kept_epoch(tmp_path, epochs: list[dict], monitor: str = "val_accuracy", best: bool = True) -> int:
    import keras

    _, keeper = epoch_callbacks(keras, tmp_path, monitor, best=best)
    keeper.set_model(_Model())
    for epoch, logs in enumerate(epochs):
        keeper.model.epoch = epoch + 1
        keeper.on_epoch_end(epoch, logs)
    kept = json.loads((tmp_path / "best.json").read_text())["epoch"]
    assert np.load(tmp_path / "best.weights.h5.npy")[0] == kept  # the weights saved are that epoch's
    return kept


def test_without_early_stopping_the_last_epoch_is_kept_whatever_validation_says(tmp_path):
    # 200 validation images rank epochs by noise: an early, high-rate epoch that "won" lost 2 points on test
    epochs = [{"val_accuracy": 0.80, "val_loss": 0.7}, {"val_accuracy": 0.895, "val_loss": 0.47},
              {"val_accuracy": 0.885, "val_loss": 0.43}, {"val_accuracy": 0.885, "val_loss": 0.45}]
    assert _kept_epoch(tmp_path, epochs, best=False) == 4
    assert _kept_epoch(tmp_path / "best", epochs) == 2


def test_the_epoch_with_the_best_validation_accuracy_is_kept_even_when_its_loss_is_higher(tmp_path):
    # On 200 validation images the smoothed loss bottomed out early, at an epoch worse on test
    epochs = [{"val_accuracy": 0.81, "val_loss": 0.64}, {"val_accuracy": 0.845, "val_loss": 0.471},
              {"val_accuracy": 0.86, "val_loss": 0.473}, {"val_accuracy": 0.86, "val_loss": 0.475}]
    assert _kept_epoch(tmp_path, epochs) == 3  # a tie on accuracy goes to the lower loss


def test_without_validation_the_lowest_training_loss_is_kept(tmp_path):
    epochs = [{"loss": 0.9}, {"loss": 0.5}, {"loss": 0.7}]
    assert _kept_epoch(tmp_path, epochs, monitor="loss") == 2


def test_a_resume_folder_of_an_older_featx_with_a_float_record_is_overwritten(tmp_path):
    (tmp_path / "best.json").write_text(json.dumps({"value": 0.3, "epoch": 1}))  # then a validation loss
    assert _kept_epoch(tmp_path, [{"val_accuracy": 0.7, "val_loss": 0.9}]) == 1
    assert json.loads((tmp_path / "best.json").read_text())["value"] == [-0.7, 0.9]
