"""Fine-tuning's optimizer: one schedule, a higher rate for the head, and weight averaging after.

Two things the benchmark showed help on real features (docs/finetune.md), neither of which Keras 3
offers as such:

- **A discriminative learning rate.** The head (the layers trained on frozen features) moves
  faster than the pretrained backbone beneath it. Keras 3 optimizers take one rate, so
  :func:`two_rate_adam` builds an Adam whose update of the head's variables uses the scheduled rate
  times ``head_rate / rate``: the same warm-up and cosine, scaled. It overrides ``update_step``,
  the per-variable update every backend calls for a subclass (PyTorch's fused Adam is only swapped
  in for Adam itself), so it trains the same on TensorFlow, JAX and PyTorch.
- **WiSE-FT** (Wortsman et al. 2022): the weights averaged between the start and the fine-tuned
  end, ``(1 - alpha) * start + alpha * end`` (:func:`interpolate`); a fine-tune that overshoots on
  a few hundred images keeps part of what the head already knew.
"""

from __future__ import annotations

import numpy as np

from featx.errors import OptionError


def check_rates(learning_rate: float, head_learning_rate: float | None, wise: float) -> None:
    """Refuse a non-positive rate or a WiSE-FT share outside [0, 1], naming the parameter."""
    for param, value in (("learning_rate", learning_rate), ("head_learning_rate", head_learning_rate)):
        if value is not None and not value > 0:
            raise OptionError(f"{{param}} must be above 0; got {value!r}.", param=param)
    if not 0 <= wise <= 1:
        raise OptionError(f"{{param}} is the share of the fine-tuned weights in the average with the start, from 0 "
                          f"(the start) to 1 (the fine-tuned weights alone); got {wise!r}.", param="wise")


def schedule(keras, learning_rate: float, steps_per_epoch: int, epochs: int):
    """The learning rate over training: a linear warm-up to ``learning_rate`` over the first epoch,
    then a cosine decay to zero by the last (a gentle start keeps the warm start's features)."""
    total = max(1, steps_per_epoch * epochs)
    warmup = min(steps_per_epoch, total // 2)
    return keras.optimizers.schedules.CosineDecay(0.0 if warmup else learning_rate, max(1, total - warmup),
                                                  warmup_target=learning_rate if warmup else None,
                                                  warmup_steps=warmup)


def two_rate_adam(keras, learning_rate, head_variables, head_factor: float):
    """An Adam at ``learning_rate`` (a rate or a schedule) whose updates of ``head_variables`` use that
    rate times ``head_factor``. Its config records the factor; the variables are matched when it is
    built (on the model's first training step), by identity."""
    head_ids = {id(variable) for variable in head_variables}

    class TwoRateAdam(keras.optimizers.Adam):
        def __init__(self, *args, head_factor: float = 1.0, **kwargs):
            super().__init__(*args, **kwargs)
            self.head_factor = float(head_factor)
            self._head_indices: set[int] = set()

        def build(self, variables):
            super().build(variables)
            self._head_indices = {i for i, variable in enumerate(variables) if id(variable) in head_ids}

        def update_step(self, gradient, variable, learning_rate):
            if self.head_factor != 1.0 and self._get_variable_index(variable) in self._head_indices:
                learning_rate = learning_rate * self.head_factor
            super().update_step(gradient, variable, learning_rate)

        def get_config(self):
            return {**super().get_config(), "head_factor": self.head_factor}

    return TwoRateAdam(learning_rate, head_factor=head_factor)


def interpolate(start: list, end: list, alpha: float) -> list:
    """WiSE-FT: each weight ``(1 - alpha) * start + alpha * end`` (``alpha`` 1: ``end`` unchanged)."""
    end = [np.asarray(w) for w in end]
    if alpha == 1:
        return end
    return [((1 - alpha) * np.asarray(a, np.float64) + alpha * b).astype(b.dtype)
            if np.issubdtype(b.dtype, np.floating) else b for a, b in zip(start, end)]  # a seed's state stays
