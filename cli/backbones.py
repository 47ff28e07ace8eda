"""``featx backbones``: what can I use?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featx.backbones.applications import BACKBONES, list_backbones
from featx.backbones.hub_table import HUB_BACKBONES, HUB_FAMILIES, list_hub_backbones
from featx.cli.app import app, handle_errors, print_json


@app.command("backbones")
@handle_errors
def backbones_command(
    pattern: Annotated[str | None, typer.Argument(help="Only names containing this text.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List the backbones: input size, feature width, preprocessing and parameter count; or, given a
    transformer's folder, what it declares: how its images are resized and cropped, and normalised."""
    if pattern and Path(pattern).expanduser().is_dir():
        _describe(pattern, as_json)
        return
    specs = [BACKBONES[name] for name in list_backbones(pattern)]
    hub = [HUB_BACKBONES[name] for name in list_hub_backbones(pattern)]
    if as_json:
        print_json(
            [
                {
                    "name": s.name,
                    "input_size": s.input_size,
                    "feature_dim": s.feature_dim,
                    "preprocessing": s.preprocessing,
                    "params": s.params,
                }
                for s in specs
            ]
            + [
                {
                    "name": s.name,
                    "family": s.family,
                    "input_size": s.input_size,
                    "feature_dims": s.feature_dims,
                    "pooling": s.default_pooling,
                    "params": s.params,
                    "handle": s.handle,
                }
                for s in hub
            ]
        )
        return
    if specs:
        typer.echo(f"{'name':<20} {'input':>5} {'features':>8}  {'preprocess':<10} {'params':>8}")
    for s in specs:
        typer.echo(
            f"{s.name:<20} {s.input_size:>5} {s.feature_dim:>8}  {s.preprocessing:<10} {s.params / 1e6:>7.1f}M"
        )
    if hub:
        typer.echo("\nTransformers through keras-hub (pip install \"featx[hub]\"); features per --pooling, "
                   "the default first:")
        typer.echo(f"{'name':<28} {'family':<7} {'input':>5}  {'pooling':<24} {'features':<16} {'params':>7}")
    for s in hub:
        poolings = [s.default_pooling] + [p for p in HUB_FAMILIES[s.family].poolings if p != s.default_pooling]
        widths = "/".join(str(s.feature_dims[p]) for p in poolings)
        typer.echo(f"{s.name:<28} {s.family:<7} {s.input_size:>5}  {'|'.join(poolings):<24} {widths:<16} "
                   f"{s.params / 1e6:>6.1f}M")
    typer.echo(
        "\nAny .keras model taking an RGB image also works: featx embed --backbone model.keras "
        "[--preprocess caffe|tf|torch|none]; and any keras-hub preset or Hugging Face snapshot of DINOv2, "
        "DINOv3 or ViT by handle (hf://org/model, kaggle://...) or folder.\nImages: a Hugging Face snapshot's are "
        "resized and cropped as its preprocessor_config.json says (DINOv2: shortest edge 256 bicubic, centre crop "
        "224; ViT: 224x224 bilinear; with Pillow, as transformers), a keras-hub preset's as its image converter "
        "(crop to the aspect ratio), the others' stretched; --resize overrides. 'featx backbones FOLDER' shows "
        "a folder's.",
    )


def _describe(folder: str, as_json: bool) -> None:
    from featx.backbones.hub import describe_snapshot

    facts = describe_snapshot(folder)
    if as_json:
        print_json(facts)
        return
    for key, value in facts.items():
        typer.echo(f"{key:<14} {value}")
