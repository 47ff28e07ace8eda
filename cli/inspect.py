"""``featx inspect``: what is wrong with a dataset (label errors, duplicates and leaks, outliers),
from its cached vectors, in seconds. Forwards to ``featx.inspection``; never imports TensorFlow."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featx.cli.app import app, handle_errors, info, print_json


@app.command("inspect")
@handle_errors
def inspect_command(
    cache: Annotated[Path | None, typer.Argument(help="A .h5 cache file or a cache folder (default: the cache "
                                                      "written last in $FEATX_CACHE_DIR or .featx).",
                                                 metavar="CACHE", show_default=False)] = None,
    backbone: Annotated[str | None, typer.Option("--backbone", "-b", help="Use the latest cache of this "
                                                 "backbone.")] = None,
    threshold: Annotated[float, typer.Option(help="Cosine similarity of the cached vectors from which two "
                                             "images may be near-duplicates (they must also stand out from "
                                             "their neighbours).")] = 0.88,
    outlier_threshold: Annotated[float, typer.Option("--outlier-threshold", help="Score (robust spreads beyond "
                                                     "the nearest class) from which an image is an outlier.")] = 3.5,
    folds: Annotated[int, typer.Option(help="Cross-validation folds that score the labels.")] = 5,
    seed: Annotated[int, typer.Option(help="Seed of the folds, PCA and clusters.")] = 0,
    report: Annotated[Path | None, typer.Option(help="Write an HTML report with thumbnails here.")] = None,
    map_path: Annotated[Path | None, typer.Option("--map", help="Write a 2-D map of the dataset (PNG) "
                                                  "here.")] = None,
    manifest: Annotated[Path | None, typer.Option("--write-manifest", help="Write a CSV manifest (path,label"
                                                  "[,split]) without the --drop findings.")] = None,
    drop: Annotated[str, typer.Option(help="Findings the manifest leaves out, comma-separated: duplicates "
                                      "(extra exact copies and copies across splits), outliers, label_issues.")]
    = "duplicates,outliers",
    relabel: Annotated[bool, typer.Option("--relabel", help="In the manifest, give each label issue kept its "
                                          "suggested label.")] = False,
    top: Annotated[int, typer.Option(min=0, help="Findings of each kind to print.")] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="Print every finding as JSON for scripts.")] = False,
) -> None:
    """Find likely label errors, exact and near duplicates (train/test leaks), and outliers.

    Works on the cached vectors only: no backbone, no TensorFlow, seconds for ten thousand images.
    """
    from featx.cache.catalog import choose_cache
    from featx.cache.outputs import check_outputs
    from featx.heads.plots import PLOT_SUFFIXES
    from featx.inspection import inspect, plot_map, write_manifest, write_report

    chosen = choose_cache(cache, backbone)
    check_outputs({"manifest": manifest, "report": report, "map_path": map_path}, inputs={"cache": chosen.path},
                  suffixes={"map_path": PLOT_SUFFIXES})  # before any work: never over the cache or each other
    info(chosen.note(lambda p: "CACHE" if p == "cache" else "--" + p))
    result = inspect(chosen.path, threshold=threshold, outlier_threshold=outlier_threshold, folds=folds, seed=seed)
    written = {}
    if manifest is not None:
        kinds = [k.strip().replace("-", "_") for k in drop.split(",") if k.strip()]
        done = write_manifest(result, manifest, drop=kinds, relabel=relabel)
        written["manifest"] = str(done.path)
        kept_issues = "" if "label_issues" in kinds or not result.label_issues else (
            f"; {done.relabelled} label issues relabelled" if relabel else
            f"; {len(result.label_issues)} label issues kept with their labels (--relabel or --drop label_issues "
            "to act on them)")
        info(f"wrote {done.path}: {done.kept} images kept, {done.left_out} left out{kept_issues}")
    if map_path is not None:
        written["map"] = str(plot_map(result, map_path, seed=seed))
    if report is not None:
        written["report"] = str(write_report(result, report, seed=seed))
    if as_json:
        print_json({**result.to_dict(), **({"files": written} if written else {})})
        return
    _print(result, top)
    for kind, path in written.items():
        if kind != "manifest":
            typer.echo(f"wrote {path}")


def _print(result, top: int) -> None:
    s = result.summary()
    typer.echo(f"{s['images']} images ({s['labelled']} labelled, {s['classes']} classes) inspected in "
               f"{s['seconds']:.2f} s")
    if s["label_accuracy"] is not None:
        typer.echo(f"held-out accuracy of the head that scores the labels: {s['label_accuracy']:.1%} (how far "
                   "to trust the label issues)")
    typer.echo(f"label issues {s['label_issues']}   duplicate groups {s['duplicates']} ({s['exact_duplicates']} "
               f"exact, {s['leaks']} across splits, {s['label_conflicts']} with conflicting labels)   "
               f"outliers {s['outliers']}")
    for note in result.notes:
        typer.echo(f"note: {note}")
    if result.label_issues:
        typer.echo(f"\nlikely label errors ({_shown(top, result.label_issues)}; score: 1 - p(given))")
        for f in result.label_issues[:top]:
            typer.echo(f"  {f.score:.3f}  {f.given} -> {f.suggested}  {f.path}")
    if result.duplicates:
        typer.echo(f"\nduplicates ({_shown(top, result.duplicates)}; similarity, then split:label per image)")
        for d in result.duplicates[:top]:
            flags = "".join(f" {name}" for name, on in (("LEAK", d.leak), ("CONFLICT", d.conflict)) if on)
            typer.echo(f"  {d.similarity:.3f} {'exact' if d.exact else 'near'}{flags}")
            for path, split, label in zip(d.paths, d.splits, d.labels):
                typer.echo(f"      {split or '-'}:{label or '-'}  {path}")
    if result.outliers:
        typer.echo(f"\noutliers ({_shown(top, result.outliers)}; score: spreads beyond the nearest class)")
        for f in result.outliers[:top]:
            typer.echo(f"  {f.score:6.1f}  {f.label or '-'}  {f.path}")


def _shown(top: int, findings) -> str:
    return f"top {top} of {len(findings)}" if len(findings) > top else f"{len(findings)}"
