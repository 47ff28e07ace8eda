"""What an inspection found: one record type per kind of finding, and the whole result.

Every finding keeps the rows it is about (``rows``, indices into the inspected
:class:`~featx.features.vectors.Features`) for the report, the map and the manifest; ``to_dict`` gives the
plain record that ``--json`` prints and a DataFrame takes (``pandas.DataFrame(result.records(kind))``).
Scores grow with suspicion in every kind: sort descending, look at the top.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from featx.features.vectors import Features

KINDS = ("label_issues", "duplicates", "outliers")  # the kinds of finding, in report order


class _OneImage:
    """A finding about a single image, at ``row``."""

    row: int

    @property
    def rows(self) -> tuple[int, ...]:
        return (self.row,)


@dataclass(frozen=True)
class LabelIssue(_OneImage):
    """A labelled image whose out-of-fold prediction disbelieves its label.

    ``score`` is 1 - the probability the cross-validated model gives the ``given`` label (0 to 1;
    1: certain the label is wrong); ``confidence`` the probability it gives the ``suggested`` one.
    """

    row: int
    path: str
    given: str
    suggested: str
    score: float
    confidence: float = 0.0

    def to_dict(self) -> dict:
        return {"path": self.path, "given": self.given, "suggested": self.suggested, "score": round(self.score, 4),
                "confidence": round(self.confidence, 4)}


@dataclass(frozen=True)
class Duplicate:
    """Images with the same content (``exact``) or nearly the same vector (cosine ``similarity``,
    the lowest between two members); ``margin``: how far the pairs stand above their neighbourhoods
    (the lowest; 1 for exact copies); ``leak``: in several splits; ``conflict``: carrying several labels."""

    rows: tuple[int, ...]
    paths: tuple[str, ...]
    similarity: float
    splits: tuple[str, ...]
    labels: tuple[str, ...]
    exact: bool
    leak: bool
    conflict: bool
    margin: float = 1.0

    def to_dict(self) -> dict:
        return {"paths": list(self.paths), "similarity": round(self.similarity, 4),
                "margin": round(self.margin, 4), "splits": list(self.splits),
                "labels": list(self.labels), "exact": self.exact, "leak": self.leak, "conflict": self.conflict}


@dataclass(frozen=True)
class Outlier(_OneImage):
    """An image far from every class (or, unlabelled, every cluster) of the dataset.

    ``score`` is its Mahalanobis distance to the nearest class, in robust standard deviations of
    every image's such distance (median and MAD): ``score=6`` is six typical spreads beyond typical.
    """

    row: int
    path: str
    label: str
    score: float

    def to_dict(self) -> dict:
        return {"path": self.path, "label": self.label, "score": round(self.score, 4)}


@dataclass(frozen=True, eq=False)
class Inspection:
    """The findings about one set of cached vectors, most suspicious first in each kind."""

    features: Features
    label_issues: tuple[LabelIssue, ...]
    duplicates: tuple[Duplicate, ...]
    outliers: tuple[Outlier, ...]
    notes: tuple[str, ...] = ()  # what could not be checked, and why
    params: dict = field(default_factory=dict)
    seconds: float = 0.0
    timings: dict = field(default_factory=dict)  # seconds per kind of finding
    # Out-of-fold accuracy of the head that scored the labels: how far to trust the label issues.
    label_accuracy: float | None = None

    def records(self, kind: str) -> list[dict]:
        """The findings of ``kind`` (one of :data:`KINDS`) as plain dicts, one per finding."""
        if kind not in KINDS:
            from featx.errors import OptionError

            raise OptionError(f"{{param}} must be one of {', '.join(KINDS)}; got {kind!r}.", param="kind")
        return [finding.to_dict() for finding in getattr(self, kind)]

    def summary(self) -> dict:
        """Counts: images, labelled images, findings of each kind, leaks and label conflicts."""
        feats = self.features
        return {
            "cache": str(feats.cache_path) if feats.cache_path else None,
            "backbone": feats.config.get("backbone"),
            "images": len(feats),
            "labelled": int(np.sum(feats.y >= 0)),
            "label_accuracy": None if self.label_accuracy is None else round(self.label_accuracy, 4),
            "classes": len(feats.classes),
            "label_issues": len(self.label_issues),
            "duplicates": len(self.duplicates),
            "exact_duplicates": sum(d.exact for d in self.duplicates),
            "leaks": sum(d.leak for d in self.duplicates),
            "label_conflicts": sum(d.conflict for d in self.duplicates),
            "outliers": len(self.outliers),
            "notes": list(self.notes),
            "params": dict(self.params),
            "seconds": round(self.seconds, 3),
            "timings": dict(self.timings),
        }

    def to_dict(self) -> dict:
        """What ``featx inspect --json`` prints: each kind's records, and the summary."""
        return {**{kind: self.records(kind) for kind in KINDS}, "summary": self.summary()}

    def __repr__(self) -> str:
        return (f"Inspection(images={len(self.features)}, label_issues={len(self.label_issues)}, "
                f"duplicates={len(self.duplicates)}, outliers={len(self.outliers)})")


def label_name(features: Features, label: int) -> str:
    """The class name of ``label``, "" for an unlabelled image."""
    return features.classes[label] if label >= 0 else ""
