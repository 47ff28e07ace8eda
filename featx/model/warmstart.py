"""The warm start of a fine-tune: a head that leaves something to learn, and images that judge it.

A head fitted on frozen features is nearly saturated on its own training images (a logistic
regression on 1,280-d features reaches a training loss of ~0.003): started from it unchanged,
fine-tuning has almost no gradient to learn from, and its validation loss only rises. Two things
fix that without changing a single prediction of the head:

- **Validation the head never saw.** The head's val split; when it has none, a stratified share of
  its training images is held out and the head refitted on the rest from the cached vectors
  (:func:`hold_out_validation`), so early stopping and the final choice judge unseen images.
- **Temperature.** The head's logits are divided by the temperature that minimises the loss on
  those validation images (:func:`choose_temperature`, temperature scaling): the argmax, hence the
  accuracy, is the head's, but its probabilities are calibrated rather than saturated, so the
  training images give gradients again (:func:`soften`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from featx.heads.split import stratified_holdout
from featx.model.trainingdata import SplitImages

VALIDATION_SHARE = 0.15  # of the training images, held out when the head has no val split
TEMPERATURES = np.geomspace(0.25, 64.0, 25)  # the grid choose_temperature searches


def hold_out_validation(head, images: dict[str, SplitImages], seed: int):
    """(head, images, note): the head and its images with a val split the head never trained on.

    With a val split already, all is returned unchanged (note ""). Otherwise a stratified
    :data:`VALIDATION_SHARE` of the training images becomes "val" and the head is refitted on the
    others, from the vectors in its cache; when that cannot be (a class with one image, no cache
    to read), no val split is made and the note says so.
    """
    if len(images.get("val", ())):
        return head, images, ""
    train = images["train"]
    held = stratified_holdout(train.labels, VALIDATION_SHARE, seed)
    if held is None or not head.cache_path or not train.ids:
        return head, images, ("no validation images (the head has no val split and its training images cannot "
                              "spare a stratified share): early stopping watches the training loss and the "
                              "fine-tuned model is kept without a check")
    kept, val = held
    refitted = _refit(head, train.subset(kept))
    note = (f"validation: {len(val)} of the head's {len(train)} training images held out "
            f"({VALIDATION_SHARE:.0%}, stratified), the head refitted on the other {len(kept)}")
    return refitted, {**images, "train": train.subset(kept), "val": train.subset(val)}, note


def _refit(head, train: SplitImages):
    """A copy of ``head`` with its estimator refitted (same parameters) on the vectors of ``train``."""
    from sklearn.base import clone

    from featx.features.vectors import load_features

    features = load_features(head.cache_path)
    row_of = {content_id: row for row, content_id in enumerate(features.ids)}
    rows = np.asarray([row_of[i] for i in train.ids], np.int64)
    estimator = clone(head.estimator)  # a keras head holds out its own stratified share again
    estimator.fit(np.asarray(features.X[rows]), train.labels)
    return dataclasses.replace(head, estimator=estimator)


def choose_temperature(probabilities: np.ndarray, labels: np.ndarray) -> float:
    """The temperature T in :data:`TEMPERATURES` for which softmax(log p / T) has the lowest mean
    cross-entropy on ``labels``; 1.0 when there are no labels."""
    if len(labels) == 0:
        return 1.0
    logits = np.log(np.clip(np.asarray(probabilities, np.float64), 1e-300, None))
    losses = []
    for temperature in TEMPERATURES:
        z = logits / temperature
        z -= z.max(axis=1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        losses.append(-log_p[np.arange(len(labels)), labels].mean())
    return float(TEMPERATURES[int(np.argmin(losses))])


def soften(network, temperature: float) -> None:
    """Divide the logits of ``network`` (a head as Keras layers, softmax last) by ``temperature``:
    its last Dense layer, the one before the softmax, gets its kernel and bias scaled."""
    from featx.backend import import_keras

    keras = import_keras()
    dense = [layer for layer in network.layers if isinstance(layer, keras.layers.Dense)][-1]
    dense.set_weights([np.asarray(w) / temperature for w in dense.get_weights()])
