"""Classifying new image files with a head: embed them exactly as for training, then predict."""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from featx.features.reports import SkippedImage
from featx.heads.head import Head


@dataclass(frozen=True)
class Predictions:
    """One row per image that could be embedded; ``skipped`` lists those that could not."""

    classes: tuple[str, ...]
    paths: list[str]
    proba: np.ndarray  # (n, len(classes))
    skipped: list[SkippedImage]

    @property
    def labels(self) -> list[str]:
        return [self.classes[i] for i in np.argmax(self.proba, axis=1)] if len(self.paths) else []

    @property
    def confidence(self) -> np.ndarray:
        return self.proba.max(axis=1) if len(self.paths) else np.zeros(0)

    def columns(self) -> list[str]:
        return ["path", "label", "confidence"] + [f"prob_{c}" for c in self.classes]

    def rows(self) -> list[dict]:
        return [
            {"path": path, "label": label, "confidence": float(conf),
             **{f"prob_{c}": float(p) for c, p in zip(self.classes, probs)}}
            for path, label, conf, probs in zip(self.paths, self.labels, self.confidence, self.proba)
        ]

    def to_dict(self) -> dict:
        return {"classes": list(self.classes), "predictions": self.rows(),
                "skipped": [s.to_dict() for s in self.skipped]}

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=self.columns(), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: (f"{v:.6f}" if isinstance(v, float) else v) for k, v in row.items()} for row in self.rows())
        return buffer.getvalue()


def predict_images(head: Head, inputs: str | os.PathLike | Sequence[str | os.PathLike], *,
                   cache_dir: str | os.PathLike | None = None, batch_size: int = 32, backend: str | None = None,
                   progress=None) -> Predictions:
    """Predict image files and folders (searched recursively) with ``head``; ``inputs`` is one path or a list.

    Images are embedded with the head's own backbone configuration through the content-addressed
    cache in ``cache_dir`` (default ``$FEATX_CACHE_DIR`` or ``.featx``), so files seen before are
    not embedded again; a fused head embeds them with each of its backbones. ``backend`` is the Keras backend (default ``$KERAS_BACKEND``, else tensorflow). Images that cannot be decoded are listed in ``skipped``, not raised.
    """
    from featx.checks import check_path
    from featx.data.layouts import collect_image_files
    from featx.engine.files import embed_files
    from featx.errors import OptionTypeError
    from featx.options import RunOptions

    if not isinstance(head, Head):
        raise OptionTypeError(f"{{param}} must be a Head (featx.load_head); got {type(head).__name__}.", param="head")
    if isinstance(inputs, (str, os.PathLike)):
        inputs = [inputs]  # one path is one image (or folder), not a sequence of characters
    elif not isinstance(inputs, Sequence):
        raise OptionTypeError(f"{{param}} must be a path or a list of paths (str or os.PathLike); got "
                              f"{type(inputs).__name__} {inputs!r:.60}.", param="inputs")
    for item in inputs:
        check_path("inputs", item)
    files = collect_image_files(inputs)
    run = RunOptions(batch_size=batch_size, backend=backend)
    # One embedding per backbone (a fused head has several), side by side; an image counts if every one worked.
    parts = [embed_files(files, config, run, cache=cache_dir, progress=progress) for config in head.embed_configs()]
    ok = np.logical_and.reduce([np.asarray(part.ok, bool) for part in parts])
    paths = [os.path.abspath(f) for f, good in zip(files, ok) if good]
    X = np.hstack([np.asarray(part.X)[ok[np.asarray(part.ok, bool)]] for part in parts]) if len(paths) else None
    proba = head.predict_proba(X) if len(paths) else np.zeros((0, len(head.classes)))
    skipped = {s.path: s for part in parts for s in part.skipped}
    return Predictions(classes=head.classes, paths=paths, proba=proba, skipped=list(skipped.values()))
