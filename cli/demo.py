"""``featx demo``: the whole pipeline on a small real dataset, in about a minute."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featx.backbones.applications import DEFAULT_BACKBONE
from featx.cli.app import app, handle_errors, info
from featx.cli.progress import progress_bar
from featx.demo import run_demo


@app.command("demo")
@handle_errors
def demo_command(
    folder: Annotated[Path, typer.Argument(help="Where to write the demo images.")] = Path("featx-demo"),
    backbone: Annotated[str, typer.Option("--backbone", "-b", help="Backbone to embed with.")] = DEFAULT_BACKBONE,
    cache: Annotated[Path | None, typer.Option(help="Cache folder (default: $FEATX_CACHE_DIR or .featx).")] = None,
    image_size: Annotated[
        int | None, typer.Option("--image-size", help="Input size in pixels (default: the backbone's own).")
    ] = None,
) -> None:
    """Write scikit-learn's handwritten digits as a labelled image folder, embed it, fit a head."""
    with progress_bar(enabled=True) as progress:
        run = run_demo(folder, backbone, cache=cache, image_size=image_size, progress=progress)
    if run.wrote_images:
        info(f"wrote the handwritten-digits demo images to {folder}/ (train/ and test/, 10 classes)")
    if run.offline_reason:
        info(f"ImageNet weights unavailable ({run.offline_reason}); continuing with --weights none: random "
             "features, which only heads that standardise them (logreg, svm) learn from.")
    report = run.features.report
    typer.echo(
        f"embedded {report.images} images with {backbone} (weights {run.weights}): {report.embedded} new, "
        f"{report.reused} reused, {report.seconds:.1f} s -> {report.cache_path}"
    )
    typer.echo(f"logreg head: {run.head.summary()} -> {run.head.path}")
    typer.echo("next:")
    heads = "logreg,knn,keras" if run.weights == "imagenet" else "logreg,svm"
    typer.echo(f"  featx compare --heads {heads}            # more heads, same cached vectors")
    typer.echo(f"  featx evaluate {run.head.path} --plot confusion.png")
    typer.echo(f"  featx predict {run.head.path} {folder / 'test' / '3'}")
    typer.echo(f"  featx embed {folder} --backbone EfficientNetB0     # another backbone, same images")
