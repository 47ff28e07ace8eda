"""What the cache gives back: vectors with their labels (``Features``), views, and run reports."""

from featx.features.reports import EmbedReport, SkippedImage, ViewsReport
from featx.features.vectors import Features, LazyVectors, load_features
from featx.features.views import Views, load_views

__all__ = ["EmbedReport", "Features", "LazyVectors", "SkippedImage", "Views", "ViewsReport", "load_features",
           "load_views"]
