"""``featx heads / fit-head / compare / evaluate / predict``: classifiers on the cached vectors.

Each command forwards to ``featx.heads``; results go to stdout (JSON with ``--json``), progress
and notes to stderr. scikit-learn is imported when a command runs, not when the CLI starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featx.cache.outputs import check_outputs
from featx.cli.app import EXIT_USAGE, BackendOption, app, fail, handle_errors, info, print_json
from featx.errors import FeatxError

CacheOption = Annotated[
    Path | None,
    typer.Option(help="A .h5 cache file, or a cache folder whose latest cache is used "
                      "(default: $FEATX_CACHE_DIR or .featx)."),
]
ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", metavar="KEY=VALUE",
                 help="A head parameter (repeatable); values parse as int, float, true/false, none or text."),
]
ClassWeightOption = Annotated[
    str | None, typer.Option("--class-weight", help="'balanced' weighs classes inversely to their frequency.")
]
TestSizeOption = Annotated[
    float, typer.Option("--test-size", help="Hold-out share for data without a test split (0: none).")
]
SeedOption = Annotated[int, typer.Option(help="Seed of the hold-out split and of the head.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
ViewsOption = Annotated[bool, typer.Option("--views", help="Also train on the cached augmented views of the "
                                           "training images ('featx embed --views K'); scores stay on plain vectors.")]
AugmentOption = Annotated[str | None, typer.Option(help="With --views: the views of this recipe, e.g. crop,jitter "
                                                   "(needed only when several recipes were embedded).")]
HeadArgument = Annotated[
    Path, typer.Argument(help="A head folder, or the name of one in <cache dir>/heads.", show_default=False)
]


def _flag(param: str) -> str:
    """How this CLI spells a Python parameter in notes: ``--backbone``."""
    return "--" + param.replace("_", "-")


def _metrics_table(metrics: dict) -> list[str]:
    lines = [f"{'split':<6} {'images':>6} {'accuracy':>9} {'macro-F1':>9}"]
    lines += [f"{name:<6} {m['n']:>6} {m['accuracy']:>9.3f} {m['macro_f1']:>9.3f}" for name, m in metrics.items()]
    lines += [f"({name}: scored on a seeded sample of {m['n']} of its {m['sampled_from']} images)"
              for name, m in metrics.items() if "sampled_from" in m]
    return lines


@app.command("heads")
@handle_errors
def heads_command(as_json: JsonOption = False) -> None:
    """List the kinds of head with their parameters, and the heads saved in the cache folder."""
    from featx.cache.locate import cache_folder
    from featx.heads import HEADS, find_heads
    from featx.heads.head import HEADS_FOLDER

    saved = find_heads()
    if as_json:
        print_json({"heads": [{"name": s.name, "summary": s.summary, "params": s.defaults()} for s in HEADS.values()],
                    "saved": [str(p) for p in saved]})
        return
    for spec in HEADS.values():
        typer.echo(f"{spec.name:<8} {spec.summary}")
        typer.echo(f"{'':<8} " + ", ".join(f"{k}={v!r}" for k, v in spec.defaults().items()))
    typer.echo(f"\nsaved heads in {cache_folder() / HEADS_FOLDER}: " + (", ".join(p.name for p in saved) or "none"))


@app.command("fit-head")
@handle_errors
def fit_head_command(
    head: Annotated[str, typer.Option("--head", help="The kind of head; 'featx heads' lists them.")] = "logreg",
    param: ParamOption = None,
    class_weight: ClassWeightOption = None,
    cache: CacheOption = None,
    backbone: Annotated[str | None, typer.Option("--backbone", "-b", help="Use the latest cache of this backbone; "
                                                 "A+B: the vectors of two backbones' caches side by side.")] = None,
    test_size: TestSizeOption = 0.2,
    seed: SeedOption = 0,
    path: Annotated[Path | None, typer.Option("--output", "-o", help="Head folder to write "
                                              "(default: <cache dir>/heads/<head>-<backbone>).")] = None,
    views: ViewsOption = False,
    augment: AugmentOption = None,
    as_json: JsonOption = False,
) -> None:
    """Fit a head on the cached vectors, print train/val/test metrics and save it."""
    from featx.features.fusion import choose_features
    from featx.heads import fit_head
    from featx.heads.params import parse_params

    features, chosen = choose_features(cache, backbone)
    check_outputs({"path": path}, inputs={"cache": [choice.path for choice in chosen]})
    for choice in chosen:
        info(choice.note(_flag))
    fitted = fit_head(features, head, test_size=test_size, seed=seed, class_weight=class_weight, note=info,
                      views=views, augment=augment, **parse_params(param or []))
    fitted.save(path)
    if as_json:
        print_json(fitted.describe())
        return
    train = len(fitted.split["train"])
    with_views = f" and {fitted.views['rows']} views of them" if fitted.views else ""
    typer.echo(f"fitted {fitted.kind} on {train} {fitted.backbone_name} vectors{with_views} in "
               f"{fitted.fit_seconds:.2f} s (split: {fitted.split['method']})")
    for line in _metrics_table(fitted.metrics):
        typer.echo(line)
    typer.echo(f"saved {fitted.path}")


@app.command("compare")
@handle_errors
def compare_command(
    heads: Annotated[str | None, typer.Option("--heads", help="Comma-separated heads (default: every kind).")] = None,
    caches: Annotated[list[Path] | None, typer.Option("--cache", help="A .h5 cache file (repeatable) or a "
                                                      "cache folder.")] = None,
    backbones: Annotated[str | None, typer.Option("--backbones", help="Comma-separated backbones: "
                                                  "the latest cache of each; A+B fuses two.")] = None,
    cv: Annotated[int | None, typer.Option("--cv", help="Stratified K-fold instead of the test split.")] = None,
    param: ParamOption = None,
    class_weight: ClassWeightOption = None,
    test_size: TestSizeOption = 0.2,
    seed: SeedOption = 0,
    views: ViewsOption = False,
    augment: AugmentOption = None,
    fine_tune: Annotated[bool, typer.Option("--fine-tune", help="Add a row: the best head that converts to Keras "
                                            "layers, fine-tuned with its backbone ('featx fine-tune' defaults), "
                                            "scored on the same test images. Takes minutes, not seconds.")] = False,
    backend: BackendOption = None,
    as_json: JsonOption = False,
) -> None:
    """Train several heads (on one or more backbones' caches) on the same split; print a leaderboard.

    --param head.key=value sets one head's parameter; key=value every compared head that has it.
    """
    if fine_tune and cv:
        raise fail("--fine-tune scores on the test split; drop --cv to add a fine-tune row.", EXIT_USAGE)
    from featx.features.fusion import choose_compared
    from featx.heads import compare_heads
    from featx.heads.fit import compared_heads
    from featx.heads.params import params_per_head
    from featx.heads.registry import get_head_spec

    names = [get_head_spec(h).name for h in compared_heads(None if heads is None else heads.split(","))]
    sources, chosen = choose_compared(caches or [], [] if backbones is None else backbones.split(","))
    for choice in chosen:
        info(choice.note(_flag))
    rows = compare_heads(sources, names, params=params_per_head(param or [], names), cv=cv,
                         test_size=test_size, seed=seed, class_weight=class_weight, views=views,
                         augment=augment,
                         progress=lambda backbone, head: info(f"fitting {head} on {backbone}..."), note=info)
    if fine_tune:
        from featx.model.leaderboard import fine_tune_row

        info("fine-tuning the best head that converts to Keras layers...")
        row = fine_tune_row(sources, rows, params=params_per_head(param or [], names), test_size=test_size,
                            seed=seed, class_weight=class_weight, note=info, backend=backend)
        if row is not None:
            rows = sorted([*rows, row], key=lambda r: (-r["accuracy"], -r["macro_f1"], r["fit_seconds"]))
    if as_json:
        print_json(rows)
        return
    views_column = f" {'views':>5}" if views else ""
    width = max([7, *(len(row["head"]) for row in rows)])
    typer.echo(f"{'rank':<4}  {'backbone':<20} {'head':<{width}}{views_column} {'accuracy':>13} {'macro-F1':>13} {'fit s':>8}")
    for rank, row in enumerate(rows, start=1):
        acc, f1 = f"{row['accuracy']:.3f}", f"{row['macro_f1']:.3f}"
        if cv:
            acc, f1 = f"{acc}±{row['accuracy_std']:.3f}", f"{f1}±{row['macro_f1_std']:.3f}"
        count = f" {row['views'] or '-':>5}" if views else ""
        typer.echo(f"{rank:<4}  {row['backbone']:<20} {row['head']:<{width}}{count} {acc:>13} {f1:>13} "
                   f"{row['fit_seconds']:>8.3f}")
    for row in rows:
        if row.get("kept") == "head":
            typer.echo(f"{row['head']}: validation did not improve on the head ({row['start']:.3f} on test before "
                       "fine-tuning): 'featx fine-tune' would keep the head's model")
    typer.echo(f"{'mean of ' + str(cv) + ' stratified folds' if cv else 'on the test split'}, "
               f"{rows[0]['n']} images per {'fold set' if cv else 'test set'}" if rows else "nothing compared")


@app.command("evaluate")
@handle_errors
def evaluate_command(
    head: HeadArgument,
    split: Annotated[str, typer.Option(help="train, val, test or all (every labelled image of the cache).")] = "test",
    features: Annotated[Path | None, typer.Option("--cache", help="Evaluate on this .h5 cache "
                                                  "(default: the head's).")] = None,
    top_k: Annotated[int, typer.Option("--top-k", help="k of the top-k accuracy.")] = 5,
    plot: Annotated[Path | None, typer.Option(help="Write the confusion matrix PNG here (and, for a Keras "
                                              "head, the training curves to <name>-curves.png).")] = None,
    as_json: JsonOption = False,
) -> None:
    """Score a head: accuracy, top-k, macro-F1, per-class scores, confusion, worst mistakes."""
    from featx.heads import evaluate_head, load_head
    from featx.heads.plots import PLOT_SUFFIXES

    fitted = load_head(head)
    check_outputs({"plot": plot}, inputs={"head": fitted.path, "features": features},
                  suffixes={"plot": PLOT_SUFFIXES})
    result = evaluate_head(fitted, features, split=split, top_k=top_k)
    written = []
    if plot is not None:
        from featx.heads.plots import curves_path, plot_confusion, plot_history

        written.append(str(plot_confusion(result, plot)))
        if fitted.history:
            written.append(str(plot_history(fitted.history, curves_path(plot), title=f"{fitted.name} training")))
    if as_json:
        print_json({**result.to_dict(), "plots": written})
        return
    _print_evaluation(result)
    for path in written:
        typer.echo(f"wrote {path}")


def _print_evaluation(result) -> None:
    missing = f", {result.missing} no longer in the cache" if result.missing else ""
    typer.echo(f"{result.head} on {result.split} ({result.n} images{missing}) of {result.cache}")
    typer.echo(f"accuracy {result.accuracy:.3f}   top-{result.top_k} accuracy {result.top_k_accuracy:.3f}   "
               f"macro-F1 {result.macro_f1:.3f}")
    width = max(5, *(len(c) for c in result.classes))
    typer.echo(f"\n{'class':<{width}} {'precision':>9} {'recall':>7} {'f1':>6} {'support':>7}")
    for row in result.per_class:
        typer.echo(f"{row['class']:<{width}} {row['precision']:>9.3f} {row['recall']:>7.3f} {row['f1']:>6.3f} "
                   f"{row['support']:>7}")
    typer.echo("\nconfusion matrix (rows: true, columns: predicted)")
    cell = max(5, width)
    typer.echo(" " * width + "".join(f" {c[:cell]:>{cell}}" for c in result.classes))
    for name, counts in zip(result.classes, result.confusion):
        typer.echo(f"{name:<{width}}" + "".join(f" {n:>{cell}}" for n in counts))
    if result.misclassified:
        typer.echo("\nmost confidently misclassified")
        for m in result.misclassified:
            typer.echo(f"  {m['confidence']:.3f}  {m['true']} -> {m['predicted']}  {m['path']}")


@app.command("predict")
@handle_errors
def predict_command(
    head: HeadArgument,
    inputs: Annotated[list[Path], typer.Argument(help="Image files and/or folders.", show_default=False)],
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write a CSV file (default: CSV on stdout).")] = None,
    cache: Annotated[Path | None, typer.Option(help="Cache folder for the new images' vectors "
                                               "(default: $FEATX_CACHE_DIR or .featx).")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", help="Images per backbone call.")] = 32,
    backend: BackendOption = None,
    as_json: JsonOption = False,
) -> None:
    """Classify new images: embed them with the head's exact backbone configuration, then predict.

    Writes path, label, confidence and one probability column per class. Images that cannot be
    read are reported and skipped.
    """
    from featx.cli.progress import progress_bar
    from featx.heads import load_head, predict_images

    fitted = load_head(head)
    check_outputs({"output": output}, inputs={"head": fitted.path, "inputs": inputs})
    with progress_bar(enabled=True) as progress:
        result = predict_images(fitted, inputs, cache_dir=cache, batch_size=batch_size, backend=backend,
                                progress=progress)
    for skipped in result.skipped:
        info(f"skipped {skipped.path}: {skipped.reason}")
    if not result.paths:
        raise FeatxError(f"none of the {len(result.skipped)} images could be read; nothing to predict.")
    if as_json:
        print_json(result.to_dict())
    elif output is None:
        typer.echo(result.to_csv(), nl=False)
    if output is not None:
        output.write_text(result.to_csv())
    info(f"{len(result.paths)} images predicted, {len(result.skipped)} skipped"
         + (f"; wrote {output}" if output else ""))
