"""``featx embed``: a frozen backbone turns DATA into one vector per image, once, into the cache."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featx.backbones.applications import DEFAULT_BACKBONE
from featx.cli.app import BackendOption, app, fail, handle_errors, info, path_argument, print_json
from featx.cli.progress import progress_bar
from featx.data.augment import AUGMENTATIONS, DEFAULT_AUGMENT, ViewRecipe
from featx.data.images import DEFAULT_MAX_PIXELS
from featx.engine.run import update_cache
from featx.engine.views import check_views_engine
from featx.options import EmbedOptions


@app.command("embed")
@handle_errors
def embed_command(
    data: Annotated[
        str,
        typer.Argument(
            help="A folder of class folders, of train/val/test folders, of plain images, "
            "or a CSV manifest (path,label[,split]); or such a folder as a URL (s3://..., gs://...).",
            show_default=False, parser=path_argument,
        ),
    ],
    backbone: Annotated[
        str, typer.Option("--backbone", "-b", help="A name from 'featx backbones', a .keras model file, or a "
                          "transformer: hf://org/model, kaggle://..., or a snapshot folder (featx\\[hub]).")
    ] = DEFAULT_BACKBONE,
    weights: Annotated[
        str | None,
        typer.Option(help="imagenet (default), none (random, from --seed) or a weights file path."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed for --weights none.")] = 0,
    image_size: Annotated[
        int | None, typer.Option("--image-size", help="Input size in pixels (default: the backbone's own).")
    ] = None,
    resize: Annotated[str | None, typer.Option(
        help="stretch, crop (centre) or pad, to the input size. Default: the backbone's own (a transformer "
             "snapshot's declared resize and crop, see 'featx backbones'; stretch otherwise).")] = None,
    pooling: Annotated[
        str | None,
        typer.Option(help="avg or max of the last feature map; for transformers cls, avg (patch tokens), cls+avg "
                     "or pooled. Default: avg, or the transformer family's own (see 'featx backbones')."),
    ] = None,
    preprocess: Annotated[
        str | None,
        typer.Option(help="For a .keras backbone: caffe, tf, torch or none (raw 0-255 RGB, default)."),
    ] = None,
    jpeg_draft: Annotated[
        bool, typer.Option("--jpeg-draft", help="Decode JPEGs of twice the input size or more at reduced scale "
                           "(several times faster for photos; slightly different vectors, a separate cache).")
    ] = False,
    precision: Annotated[
        str, typer.Option(help="Backbone compute dtype: float32, bfloat16 or float16 (mixed precision: faster on "
                          "GPUs, vectors within ~1e-2; a separate cache).")
    ] = "float32",
    batch_size: Annotated[
        int | None, typer.Option("--batch-size", help="Images per backbone call (default: 32 on a CPU, the "
                                 "largest that fits on a GPU).")
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(help="Cache folder, or a .h5 cache file (default: $FEATX_CACHE_DIR or .featx)."),
    ] = None,
    workers: Annotated[
        int | None,
        typer.Option(help="Decoding workers: processes for a GPU backbone, else threads (default: one per core); "
                     "with --engine ray, embedding workers (default: as many as the cluster fits)."),
    ] = None,
    max_pixels: Annotated[
        int, typer.Option("--max-pixels", help="Skip images with more pixels than this (decompression bombs).")
    ] = DEFAULT_MAX_PIXELS,
    dtype: Annotated[
        str | None,
        typer.Option(help="How the cache stores vectors: float32 or float16 (half the size, within 1e-3). "
                     "Default: the cache's own, float32 for a new cache."),
    ] = None,
    backend: BackendOption = None,
    engine: Annotated[
        str, typer.Option(help="local (this process) or ray (a Ray cluster; pip install \"featx\\[ray]\").")
    ] = "local",
    address: Annotated[
        str | None,
        typer.Option(help="--engine ray: the cluster, e.g. ray://head:10001 (default: $RAY_ADDRESS, else local Ray)."),
    ] = None,
    gpus_per_worker: Annotated[
        float, typer.Option("--gpus-per-worker", help="--engine ray: GPUs each embedding worker holds.")
    ] = 0,
    views: Annotated[
        int, typer.Option(help="Also cache this many augmented views of each training image, for heads fitted "
                          "with --views (flips, crops, colour jitter; seeded per image; the plain cache is unchanged).")
    ] = 0,
    augment: Annotated[
        str, typer.Option(help=f"The augmentations of --views, comma-separated: {', '.join(AUGMENTATIONS)} "
                          "(flips are wrong for text and digits: use crop,jitter there).")
    ] = DEFAULT_AUGMENT,
    strict: Annotated[bool, typer.Option("--strict", help="Exit 1 when any image was skipped.")] = False,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Stop at once if another run is updating the same cache.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object for scripts.")] = False,
) -> None:
    """Embed every image of DATA once into the feature cache; reruns embed only what changed."""
    recipe = ViewRecipe(views, augment)
    check_views_engine(recipe, engine)  # before the options, which refuse --engine ray without Ray
    options = EmbedOptions(
        backbone=backbone, weights=weights, seed=seed, image_size=image_size, resize=resize, pooling=pooling,
        preprocess=preprocess, jpeg_draft=jpeg_draft, precision=precision, batch_size=batch_size, workers=workers,
        max_pixels=max_pixels, dtype=dtype, backend=backend, engine=engine, address=address,
        gpus_per_worker=gpus_per_worker,
    )
    with progress_bar(enabled=not (quiet or as_json)) as progress:
        report = update_cache(data, options, cache=cache, progress=progress, wait=not no_wait, on_wait=info,
                              views=recipe)
    if as_json:
        print_json(report.to_dict())  # its "warnings" list carries them
    else:
        _print_warnings(report)  # even with --quiet: they say what the scan left out
        if not quiet:
            _print_summary(report)
    if strict and report.skipped:
        raise fail(f"{len(report.skipped)} images were skipped and --strict is set (the cache keeps the rest).")


def _print_warnings(report) -> None:
    """What the dataset scan left out or merged, one ``warning:`` line each on stderr."""
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)


def _print_summary(report) -> None:
    typer.echo(
        f"{report.images} images: {report.embedded} embedded, {report.reused} reused, "
        f"{len(report.skipped)} skipped ({report.seconds:.1f} s)"
    )
    for skipped in report.skipped:
        typer.echo(f"  skipped {skipped.path}: {skipped.reason}")
    typer.echo(f"{report.embedded + report.reused} vectors of {report.feature_dim} floats in {report.cache_path}")
    views = report.views
    if views is not None:
        typer.echo(f"{views.count} views ({views.augment}) of {views.images} training images: {views.embedded} "
                   f"embedded, {views.reused} reused ({views.seconds:.1f} s) in {views.cache_path}")
        for failed in views.failed:
            typer.echo(f"  no views of {failed.path}: {failed.reason}")
        if not views.images:
            typer.echo("  no labelled training images to make views of (views need class folders or a label "
                       "column; with a split, images of the train split)")
