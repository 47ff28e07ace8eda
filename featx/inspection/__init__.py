"""Inspect a dataset from its cached vectors: likely label errors, duplicates and leakage, outliers.

``featx.inspect(features_or_cache)`` returns an :class:`Inspection`; :func:`without_findings` gives
the features less the chosen findings (to refit a head), :func:`write_manifest` writes them as a
CSV manifest (for ``featx embed``), :func:`plot_map` a 2-D map of the
dataset as PNG and :func:`write_report` an HTML page with thumbnails. Nothing here imports
TensorFlow: it all works on the vectors the cache already holds.
"""

from __future__ import annotations

from featx.inspection.findings import KINDS, Duplicate, Inspection, LabelIssue, Outlier
from featx.inspection.manifest import DEFAULT_DROP, without_findings, write_manifest
from featx.inspection.picture import map_coordinates, plot_map
from featx.inspection.report import write_report
from featx.inspection.run import inspect

__all__ = ["DEFAULT_DROP", "KINDS", "Duplicate", "Inspection", "LabelIssue", "Outlier", "inspect", "map_coordinates", "plot_map",
           "without_findings", "write_manifest", "write_report"]
