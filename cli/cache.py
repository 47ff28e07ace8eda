"""``featx cache ...``: what is cached?"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featx.cache.locate import default_cache_dir, find_caches, summarize
from featx.cli.app import cache_app, handle_errors, print_json


@cache_app.command("info")
@handle_errors
def info_command(
    path: Annotated[
        Path | None, typer.Argument(help="A cache file or folder (default: $FEATX_CACHE_DIR or .featx).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show the caches in a folder, or one cache file: dataset, backbone configuration, counts."""
    target = path or default_cache_dir()
    summaries = [summarize(target)] if target.is_file() else find_caches(target)
    if as_json:
        print_json([s.to_dict() for s in summaries])
        return
    if not summaries:
        typer.echo(f"No feature caches in {target}. Run 'featx embed DATA' to make one.")
        return
    for s in summaries:
        size_mb = s.path.stat().st_size / 1e6
        config = ", ".join(f"{k}={v}" for k, v in s.config.items() if k != "backbone")
        typer.echo(f"{s.path}  ({size_mb:.1f} MB, updated {s.updated})")
        typer.echo(f"  dataset   {s.dataset}")
        typer.echo(f"  backbone  {s.backbone}  [{config}]")
        typer.echo(
            f"  images    {s.images} files, {s.skipped} skipped, {s.vectors} vectors of {s.feature_dim} floats"
        )
