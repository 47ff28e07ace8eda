"""``featx search``: the cached images nearest to some images, or shared with another cache.
Forwards to :func:`featx.search`; embeds (and imports TensorFlow) only for a query file the cache
does not hold."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from featx.cli.app import BackendOption, app, handle_errors, info, print_json


@app.command("search")
@handle_errors
def search_command(
    queries: Annotated[list[str] | None, typer.Argument(help="Image files, paths the cache lists, or content ids.",
                                                        metavar="QUERY...", show_default=False)] = None,
    cache: Annotated[Path | None, typer.Option(help="A .h5 cache file, or a cache folder whose latest cache is "
                                               "searched (default: $FEATX_CACHE_DIR or .featx).")] = None,
    backbone: Annotated[str | None, typer.Option("--backbone", "-b", help="Search the latest cache of this "
                                                 "backbone.")] = None,
    top: Annotated[int, typer.Option(min=1, help="Hits per query (with --against: matches shown).")] = 10,
    split: Annotated[str | None, typer.Option(help="Search only the images of this split (train, val, test).")]
    = None,
    label: Annotated[str | None, typer.Option(help="Search only the images of this class.")] = None,
    against: Annotated[Path | None, typer.Option(help="Another cache of the same backbone configuration: each "
                                                 "image of this cache with its nearest there (copies across "
                                                 "datasets).")] = None,
    text: Annotated[list[str] | None, typer.Option(help="Search by a sentence (repeatable) on a cache of CLIP or "
                                                   "SigLIP image features: the model's text tower embeds it.")]
    = None,
    text_model: Annotated[Path | None, typer.Option("--text-model", help="The CLIP or SigLIP snapshot folder whose "
                                                    "text tower embeds --text (default: the cache's own).")] = None,
    method: Annotated[str, typer.Option(help="exact, index (the approximate index beside the cache: pip install "
                                        "'featx\\[search]'), or auto (the index from 100,000 images on, when "
                                        "installed).")] = "auto",
    nprobe: Annotated[int | None, typer.Option(min=1, help="Inverted lists the index searches in each large "
                                               "segment (default 96): fewer is faster, more is closer to exact.")]
    = None,
    batch_size: Annotated[int | None, typer.Option("--batch-size", help="Images per batch when a query file "
                                                   "must be embedded.")] = None,
    backend: BackendOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the matches as JSON for scripts.")] = False,
) -> None:
    """Find the cached images most similar (cosine) to image files, cached paths or content ids.

    A query file the cache already holds is not embedded again; any other is embedded with the
    cache's exact backbone configuration. Hits print as: score, split:label, path.
    """
    from featx.cache.catalog import choose_cache
    from featx.search import search

    chosen = choose_cache(cache, backbone)
    info(chosen.note(lambda p: "--" + p), quiet=as_json)
    result = search(chosen.path, list(queries or []), top=top, split=split, label=label, against=against,
                    batch_size=batch_size, backend=backend, method=method,
                    text=text, text_model=text_model, nprobe=nprobe)
    for note in result.notes:
        info(f"note: {note}", quiet=as_json)
    if as_json:
        print_json(result.to_dict())
        return
    if against is not None:
        typer.echo(f"{len(result)} images of {result.cache} with their nearest in {against} "
                   "(score, split:label, then the image there)")
    for match in result:
        if against is not None:
            hit = match.hits[0]
            typer.echo(f"{hit.score:7.4f}  {match.split or '-'}:{match.label or '-'}  {match.query}")
            typer.echo(f"         {hit.split or '-'}:{hit.label or '-'}  {hit.path}")
            continue
        typer.echo(f"{match.query}")
        for hit in match.hits:
            typer.echo(f"  {hit.score:7.4f}  {hit.split or '-'}:{hit.label or '-'}  {hit.path}")
        if not match.hits:
            typer.echo("  (no image passes the filters)")
