"""``featx weights ...``: which ImageNet weights file each backbone needs, and installing it offline."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featx.backbones.weights import import_weights, list_weights, weights_dir
from featx.cli.app import handle_errors, info, print_json, weights_app

AsJson = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


@weights_app.command("list")
@handle_errors
def list_command(
    pattern: Annotated[str | None, typer.Argument(help="Only backbones whose name contains this text.")] = None,
    image_size: Annotated[
        int | None, typer.Option("--image-size", help="Input size (MobileNet and MobileNetV2 have a file per size).")
    ] = None,
    as_json: AsJson = False,
) -> None:
    """List the ImageNet weights file each backbone needs: name, URL, hash, and whether Keras has it."""
    rows = list_weights(pattern, input_size=image_size)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        checked = f"{row['algorithm']} {row['hash']}" if row["hash"] else "no hash (Keras checks none)"
        typer.echo(f"{row['backbone']:<18} {row['status']:<13} {row['file']}")
        typer.echo(f"{'':<32} {row['url']}\n{'':<32} {checked}")
    info(f"Keras looks in {weights_dir()}. Offline: download a file on a machine with internet, then "
         "'featx weights import FILE'.")


@weights_app.command("import")
@handle_errors
def import_command(
    files: Annotated[list[Path], typer.Argument(metavar="FILE", help="Downloaded weights files (.h5).")],
    as_json: AsJson = False,
) -> None:
    """Check downloaded weights files against Keras' hashes and install them, for offline ImageNet weights.

    Each file is recognised by its name (or content) and copied into Keras' cache folder, so
    '--weights imagenet' works without internet. One bad file installs none.
    """
    done = import_weights(files)
    if as_json:
        print_json([{"source": str(d.source), "path": str(d.path), "backbones": list(d.backbones),
                     "verified": d.verified} for d in done])
        return
    for d in done:
        check = f"{d.verified} verified" if d.verified else "no hash to check"
        typer.echo(f"{d.path}  ({', '.join(d.backbones)}; {check})")


@weights_app.command("hub")
def hub_command(
    pattern: Annotated[str | None, typer.Argument(help="Only backbones whose name contains this text.")] = None,
    as_json: AsJson = False,
) -> None:
    """List the keras-hub transformers' pinned downloads and whether kagglehub has them (offline use)."""
    from featx.backbones.hub import list_hub_weights

    rows = list_hub_weights(pattern)
    if as_json:
        print_json(rows)
        return
    for row in rows:
        typer.echo(f"{row['backbone']:<28} {row['status']:<8} {row['handle']}\n{'':<38}{row['path']}")
    info("kagglehub keeps downloads in $KAGGLEHUB_CACHE (default ~/.cache/kagglehub), Hugging Face in $HF_HOME. "
         "Offline: copy a filled cache here, or pass a snapshot folder as --backbone.")


@weights_app.command("path")
def path_command() -> None:
    """Print the folder where Keras looks for weights files ($KERAS_HOME/models); creates nothing."""
    typer.echo(str(weights_dir()))
