"""``featx backbones``: what can I use?"""

from __future__ import annotations

from typing import Annotated

import typer

from featx.backbones import BACKBONES, list_backbones
from featx.cli.app import app, print_json


@app.command("backbones")
def backbones_command(
    pattern: Annotated[str | None, typer.Argument(help="Only names containing this text.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List the backbones: input size, feature width, preprocessing and parameter count."""
    specs = [BACKBONES[name] for name in list_backbones(pattern)]
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
        )
        return
    typer.echo(f"{'name':<20} {'input':>5} {'features':>8}  {'preprocess':<10} {'params':>8}")
    for s in specs:
        typer.echo(
            f"{s.name:<20} {s.input_size:>5} {s.feature_dim:>8}  {s.preprocessing:<10} {s.params / 1e6:>7.1f}M"
        )
    typer.echo(
        "\nAny .keras model taking an RGB image also works: featx embed --backbone model.keras "
        "[--preprocess caffe|tf|torch|none]",
    )
