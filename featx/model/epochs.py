"""Fine-tuning's epochs: which one is kept, and what survives a killed run.

Keras callbacks for ``featx.model.finetune``: a log of every epoch's metrics and the kept epoch's
weights, both written to the run's resume folder so a resumed run keeps them (EarlyStopping's own
best weights live in memory and die with the process). The kept epoch is the last one, where the
cosine schedule ends, unless ``best``: then the one with the best validation score. On a few hundred
validation images that choice is mostly noise and, when it falls on an early, high-rate epoch, a
loss of up to 2 points on test (docs/finetune.md), so only early stopping asks for it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from featx._faults import crash_point


def resumed_epoch(work: Path) -> int:
    """Epochs a killed run finished before (0 for a fresh one)."""
    log = work / "epochs.json"
    return len(json.loads(log.read_text()).get("loss", [])) if log.is_file() else 0


def full_history(work: Path) -> dict:
    """Every epoch's metrics so far, across resumes."""
    log = work / "epochs.json"
    return json.loads(log.read_text()) if log.is_file() else {}


def rank(logs: dict, monitor: str) -> list | None:
    """An epoch's rank, lower is better: validation accuracy first (the loss, smoothed and noisy on a
    few hundred images, picked early epochs that were worse on test), its loss breaking ties."""
    if monitor != "val_accuracy":
        return None if logs.get(monitor) is None else [float(logs[monitor]), 0.0]
    return None if "val_accuracy" not in logs else [-float(logs["val_accuracy"]), float(logs.get("val_loss", 0.0))]


def epoch_callbacks(keras, work: Path, monitor: str, best: bool = False) -> tuple[list, object]:
    """(callbacks in the order ``fit`` calls them: the backup of each epoch for a resume, the
    keeper of the kept epoch's weights, the log; that keeper, to restore the kept epoch after ``fit``).
    ``best``: keep the epoch ``rank`` puts first on ``monitor``, else the last."""

    class EpochLog(keras.callbacks.Callback):
        """Keeps every epoch's metrics in a file, so the curves survive a resumed run."""

        def on_epoch_end(self, epoch, logs=None):
            history = full_history(work)
            for key, value in (logs or {}).items():
                history.setdefault(key, []).append(float(value))
            work.mkdir(parents=True, exist_ok=True)
            (work / "epochs.tmp").write_text(json.dumps(history))
            os.replace(work / "epochs.tmp", work / "epochs.json")
            crash_point("finetune-epoch")

    class KeptWeights(keras.callbacks.Callback):
        """Saves the kept epoch's weights; its record survives a killed run (EarlyStopping's does not)."""

        weights, record = work / "best.weights.h5", work / "best.json"

        def on_epoch_end(self, epoch, logs=None):
            value = rank(logs or {}, monitor) if best else [-float(epoch), 0.0]
            kept = json.loads(self.record.read_text())["value"] if self.record.is_file() else None
            kept = kept if isinstance(kept, list) else [np.inf, np.inf]  # a float: an older featx's record
            if value is not None and value < kept:
                work.mkdir(parents=True, exist_ok=True)
                self.model.save_weights(self.weights)
                self.record.write_text(json.dumps({"value": value, "epoch": epoch + 1}))

        def restore(self, model) -> int:
            """Load the kept epoch's weights into ``model``; returns that epoch (0: none was kept)."""
            if not self.weights.is_file():
                return 0
            model.load_weights(self.weights)
            return int(json.loads(self.record.read_text())["epoch"])

    keeper = KeptWeights()
    return [keras.callbacks.BackupAndRestore(str(work / "backup")), keeper, EpochLog()], keeper
