"""Acting on an inspection: the features without the chosen findings (to refit a head at once),
or a CSV manifest of them (``path,label[,split]``, the layout ``featx embed`` reads).

Only what is confidently wrong leaves by default (:data:`DEFAULT_DROP`): the extra copies of exact
duplicates and of copies across splits (one copy stays), and the outliers. Label issues stay with
their labels, listed by the inspection: ``relabel`` gives them the suggested label, and ``drop``
naming ``label_issues`` leaves them out (and every copy of a duplicate whose labels conflict)."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from featx.cache.outputs import check_outputs
from featx.data.records import SPLITS
from featx.errors import OptionError
from featx.features.vectors import Features
from featx.inspection.findings import KINDS, Duplicate, Inspection, label_name

# Which copy of a duplicate group stays: the most held-out split, so test sets keep their images
# and the leaked copy leaves train.
_KEEP_FIRST = {name: rank for rank, name in enumerate(reversed(SPLITS))}
DEFAULT_DROP = ("duplicates", "outliers")  # label issues are listed (or relabelled), not dropped


class ManifestWritten(NamedTuple):
    path: Path
    kept: int
    left_out: int
    relabelled: int = 0


def left_out_rows(inspection: Inspection, drop: Iterable[str] = DEFAULT_DROP) -> set[int]:
    """The rows the manifest leaves out: every image of a label issue or an outlier; of an exact
    duplicate or a leak (near copies across splits), all copies but one; with ``label_issues``
    dropped too, all copies of a group whose labels conflict (which one is right is unknown).
    Near copies within one split are listed, never dropped: they may be two photos of one thing."""
    drop = list(drop)
    unknown = [kind for kind in drop if kind not in KINDS]
    if unknown:
        raise OptionError(f"{{param}} takes {', '.join(KINDS)}; got {', '.join(map(repr, unknown))}.", param="drop")
    rows: set[int] = set()
    for kind in drop:
        for finding in getattr(inspection, kind):
            if not isinstance(finding, Duplicate):
                rows.update(finding.rows)
            elif finding.exact or finding.leak:
                rows.update(_extra_copies(finding, all_if_conflict="label_issues" in drop))
    return rows


def _extra_copies(group: Duplicate, *, all_if_conflict: bool) -> tuple[int, ...]:
    if group.conflict and all_if_conflict:
        return group.rows
    ranked = sorted(zip(group.rows, group.splits), key=lambda pair: _KEEP_FIRST.get(pair[1], len(SPLITS)))
    return tuple(row for row, _ in ranked[1:])


def without_findings(inspection: Inspection, drop: Iterable[str] = DEFAULT_DROP) -> Features:
    """The inspected features less the rows :func:`left_out_rows` names: fit a head on them."""
    gone = left_out_rows(inspection, drop)
    return inspection.features.subset([row for row in range(len(inspection.features)) if row not in gone])


def write_manifest(inspection: Inspection, path: str | os.PathLike, *, drop: Iterable[str] = DEFAULT_DROP,
                   relabel: bool = False) -> ManifestWritten:
    """Write every inspected image except those of the ``drop`` kinds of finding as a CSV manifest;
    with ``relabel``, a label issue kept carries its suggested label. Paths are relative to the
    manifest's folder where they can be."""
    check_outputs({"path": path}, inputs={"cache": inspection.features.cache_path})
    path = Path(path)
    feats = inspection.features
    gone = left_out_rows(inspection, drop)
    keep = [row for row in range(len(feats)) if row not in gone]
    labels = [label_name(feats, int(y)) for y in feats.y]
    relabelled = 0
    for issue in inspection.label_issues if relabel else ():
        if issue.row not in gone:
            labels[issue.row] = issue.suggested
            relabelled += 1
    folder = path.resolve().parent
    columns = ["path", "label"] + (["split"] if feats.has_splits else [])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(columns)
        for row in keep:
            cells = [_relative(str(feats.paths[row]), folder), labels[row]]
            writer.writerow(cells + ([str(feats.split[row])] if feats.has_splits else []))
    return ManifestWritten(path, len(keep), len(gone), relabelled)


def _relative(path: str, folder: Path) -> str:
    """``path`` relative to ``folder`` with "/" separators, or absolute when that is impossible."""
    try:
        return Path(os.path.relpath(path, folder)).as_posix()
    except ValueError:  # another drive on Windows
        return Path(path).as_posix()
