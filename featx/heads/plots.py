"""PNG figures: an evaluation's confusion matrix, and training curves (a Keras head's, a fine-tune's).

Matplotlib is imported only here, through its object-oriented Agg canvas: no pyplot, no global
backend switch, no window.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from featx.cache.outputs import check_outputs
from featx.heads.evaluate import Evaluation

PLOT_SUFFIXES = (".png", ".pdf", ".svg", ".jpg", ".jpeg")  # what a plot is written as, by its name


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def plot_confusion(evaluation: Evaluation, path: str | os.PathLike) -> Path:
    """Write the confusion matrix (rows true, columns predicted) as a PNG."""
    check_plot_path(path)
    matrix = np.asarray(evaluation.confusion)
    size = max(4.0, 0.5 * len(evaluation.classes) + 2.5)
    figure = _figure(size + 1, size)
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=axes)
    ticks = np.arange(len(evaluation.classes))
    axes.set_xticks(ticks, labels=evaluation.classes, rotation=45, ha="right")
    axes.set_yticks(ticks, labels=evaluation.classes)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(f"{evaluation.head} on {evaluation.split}: accuracy {evaluation.accuracy:.3f}")
    if len(evaluation.classes) <= 30:
        threshold = matrix.max() / 2 if matrix.size else 0
        for (row, col), count in np.ndenumerate(matrix):
            axes.text(col, row, str(count), ha="center", va="center",
                      color="white" if count > threshold else "black", fontsize=8)
    figure.savefig(path, dpi=100)
    return Path(path)


def plot_history(history: dict[str, list[float]], path: str | os.PathLike, title: str = "", *,
                 mark_after: int | None = None, mark_label: str = "fine-tuning starts") -> Path:
    """Write loss and accuracy per epoch, training vs validation, as a PNG.

    ``mark_after=N`` draws a dashed line between epochs N and N + 1 labelled ``mark_label``: where
    fine-tuning took over from the head's own epochs.
    """
    from matplotlib.ticker import MaxNLocator

    check_plot_path(path)
    figure = _figure(10, 4)
    for position, metric in enumerate(("loss", "accuracy"), start=1):
        axes = figure.add_subplot(1, 2, position)
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = history.get(prefix + metric)
            if values:
                axes.plot(np.arange(1, len(values) + 1), values, marker="o", label=label)
        if mark_after is not None:
            axes.axvline(mark_after + 0.5, color="grey", linestyle="--", label=mark_label)
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set_xlabel("epoch")
        axes.set_ylabel(metric)
        axes.legend()
    figure.suptitle(title or "training curves")
    figure.savefig(path, dpi=100)
    return Path(path)


def check_plot_path(path: str | os.PathLike, param: str = "path") -> None:
    """Refuse a plot path that is featx's own file or not an image name (one line, nothing drawn)."""
    check_outputs({param: path}, suffixes={param: PLOT_SUFFIXES})


def curves_path(plot_path: str | os.PathLike) -> Path:
    """``confusion.png`` → ``confusion-curves.png``: where ``--plot`` puts the training curves."""
    path = Path(plot_path)
    return path.with_name(f"{path.stem}-curves{path.suffix or '.png'}")
