"""A 2-D map of the dataset: PCA (or UMAP when installed), coloured by class, findings marked."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from featx.errors import MissingDependencyError, OptionError
from featx.features.vectors import Features
from featx.heads.plots import _figure, check_plot_path
from featx.inspection.duplicates import unit_rows
from featx.inspection.findings import Inspection

METHODS = ("auto", "pca", "umap")
_MARKS = (  # kind, how the findings of that kind are drawn over the class colours
    ("label_issues", {"marker": "o", "facecolors": "none", "edgecolors": "red", "s": 60, "linewidths": 1.5,
                      "label": "label issue"}),
    ("duplicates", {"marker": "x", "color": "black", "s": 30, "linewidths": 1.0, "label": "duplicate"}),
    ("outliers", {"marker": "^", "facecolors": "none", "edgecolors": "darkorange", "s": 70, "linewidths": 1.5,
                  "label": "outlier"}),
)


def map_coordinates(features: Features, *, method: str = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """Two coordinates per image and the method that made them: UMAP ("auto" when umap-learn is
    installed, cosine metric) or PCA of the unit vectors."""
    if method not in METHODS:
        raise OptionError(f"{{param}} must be one of {', '.join(METHODS)}; got {method!r}.", param="method")
    Z = unit_rows(features.X)
    if method != "pca" and len(Z) > 3:
        try:
            import umap
        except ImportError:
            if method == "umap":
                raise MissingDependencyError("In order to draw a UMAP map you'll need to install via: "
                                             "pip install 'featx[umap]'") from None
        else:
            reducer = umap.UMAP(n_components=2, metric="cosine", random_state=seed, n_jobs=1,
                                n_neighbors=min(15, len(Z) - 1))
            return np.asarray(reducer.fit_transform(Z)), "umap"
    if len(Z) < 2 or Z.shape[1] < 2:
        return np.zeros((len(Z), 2)), "pca"
    from sklearn.decomposition import PCA

    return PCA(2, random_state=seed).fit_transform(Z), "pca"


def plot_map(inspection: Inspection, path: str | os.PathLike, *, method: str = "auto", seed: int = 0) -> Path:
    """Write the map as a PNG: one colour per class (grey: unlabelled), findings ringed."""
    check_plot_path(path)
    draw_map(inspection, method=method, seed=seed).savefig(path, dpi=100)
    return Path(path)


def draw_map(inspection: Inspection, *, method: str = "auto", seed: int = 0):
    """The map as a matplotlib Figure (Agg canvas, no pyplot)."""
    feats = inspection.features
    coords, used = map_coordinates(feats, method=method, seed=seed)
    figure = _figure(9, 7)
    axes = figure.add_subplot()
    colours = _class_colours(len(feats.classes))
    unlabelled = feats.y < 0
    if unlabelled.any():
        axes.scatter(*coords[unlabelled].T, s=8, color="lightgrey", label="unlabelled")
    for label, name in enumerate(feats.classes):
        member = feats.y == label
        axes.scatter(*coords[member].T, s=8, color=colours[label], alpha=0.7,
                     label=name if len(feats.classes) <= 20 else None)
    for kind, style in _MARKS:
        rows = sorted({row for finding in getattr(inspection, kind) for row in finding.rows})
        if rows:
            axes.scatter(*coords[rows].T, **{**style, "label": f"{style['label']} ({len(getattr(inspection, kind))})"})
    axes.set_xticks([])
    axes.set_yticks([])
    axes.set_title(f"{len(feats)} images, {used.upper()} of the {_short(str(feats.config.get('backbone', '')))} vectors")
    axes.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, markerscale=1.5)
    return figure


def _short(backbone: str) -> str:
    """A backbone as a title shows it: a custom file by its name, without the path and sha256."""
    if backbone.startswith("custom:"):
        backbone = os.path.basename(backbone.split(":sha256:")[0].removeprefix("custom:"))
    return backbone[:60]


def _class_colours(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20" if n <= 20 else "turbo"]
    return [cmap(i if n <= 20 else i / max(n - 1, 1)) for i in range(n)]
