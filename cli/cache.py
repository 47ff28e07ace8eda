"""``featx cache ...``: what is cached?"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from featx.cache.append import compact_cache
from featx.cache.catalog import cache_files, find_caches, summarize
from featx.cache.delete import delete_cache
from featx.cache.locate import cache_folder
from featx.cache.verify import verify_cache
from featx.cli.app import EXIT_USAGE, cache_app, fail, handle_errors, print_json
from featx.errors import FeatxError, MissingFileError

CachePath = Annotated[
    Path | None, typer.Argument(help="A cache file or folder (default: $FEATX_CACHE_DIR or .featx).")
]


@cache_app.command("info")
@handle_errors
def info_command(
    path: CachePath = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Show the caches in a folder, or one cache file: dataset, backbone configuration, counts."""
    from featx.backbones.hub_pipeline import describe_resize, is_pipeline

    target = cache_folder(path)
    if path is not None and not target.exists():
        raise MissingFileError(f"{{param}} {target} does not exist; give a cache file or folder ('featx cache ls' "
                               "lists them).", param="path")
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
        if is_pipeline(s.config.get("resize", "")):
            typer.echo(f"  pixels    {describe_resize(s.config['resize'], s.config.get('input_size', 0))}")
        if s.backends:
            typer.echo(f"  backends  {', '.join(s.backends)}")
        typer.echo(
            f"  images    {s.images} files, {s.skipped} skipped, {s.vectors} vectors of {s.feature_dim} floats"
        )
        for views in s.views:
            typer.echo(f"  views     {views['views_per_image']} per training image ({views['augment']}): "
                       f"{views['vectors']} vectors in {views['path']}")


@cache_app.command("ls")
@handle_errors
def ls_command(
    folder: Annotated[Path | None, typer.Argument(help="Cache folder (default: $FEATX_CACHE_DIR or .featx).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """List the caches, one line each, most recent first."""
    summaries = find_caches(cache_folder(folder))
    if as_json:
        print_json([s.to_dict() for s in summaries])
        return
    for s in summaries:
        typer.echo(f"{s.path}\t{s.backbone}\t{s.images} images\t{s.updated}")


@cache_app.command("verify")
@handle_errors
def verify_command(
    path: CachePath = None,
    rehash: Annotated[bool, typer.Option("--rehash", help="Also check each file still has its content id.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Check caches: schema version, structure, counts, NaN/inf; exit 1 if any has a problem."""
    files = cache_files(path)
    if not files:
        raise fail(f"No feature caches in {cache_folder(path)}.")
    results = {str(f): verify_cache(f, rehash=rehash) for f in files}
    if as_json:
        print_json([{"cache": f, "ok": not p, "problems": p, "notes": n} for f, (p, n) in results.items()])
    else:
        for file, (problems, notes) in results.items():
            typer.echo(f"{file}: {'ok' if not problems else 'PROBLEMS'}")
            for line in problems + notes:
                typer.echo(f"  {line}")
    if any(problems for problems, _ in results.values()):
        raise typer.Exit(1)


@cache_app.command("compact")
@handle_errors
def compact_command(path: CachePath = None) -> None:
    """Merge a cache's segments into one and drop vectors no image refers to (saves space and files;
    never needed for correctness). Waits for a running embed of that cache."""
    files = cache_files(path)
    if not files:
        raise fail(f"No feature caches in {cache_folder(path)}.")
    for file in files:
        merged, dropped = compact_cache(file)
        typer.echo(f"{file}: merged {merged} segment(s) into one, dropped {dropped} vector(s) no image refers to")


@cache_app.command("export")
@handle_errors
def export_command(
    out: Annotated[Path, typer.Argument(help="The file (parquet) or folder (npy) to write.")],
    path: Annotated[Path | None, typer.Option("--cache", help="The cache file (default: the one written last).")] = None,
    format: Annotated[str, typer.Option("--format", help="parquet or npy.")] = "parquet",
    force: Annotated[bool, typer.Option("--force", help="Replace the vectors.npy and rows.csv an npy folder "
                                        "already holds.")] = False,
) -> None:
    """Write id, path, label, split and vector of every embedded image, streamed in chunks."""
    from featx.cache.catalog import choose_cache
    from featx.cache.export import export_cache

    source = choose_cache(path).path
    rows = export_cache(source, out, format=format, force=force)
    typer.echo(f"wrote {rows} rows of {source} to {out}")


@cache_app.command("rm")
@handle_errors
def rm_command(
    paths: Annotated[list[Path] | None, typer.Argument(help="Cache files to delete.")] = None,
    all_caches: Annotated[bool, typer.Option("--all", help="Delete every cache in the cache folder.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="With --all: delete without asking.")] = False,
) -> None:
    """Delete featx caches (with their shards and lock); refuses any other file, and a cache that a
    run is writing: one line each, exit 1 after deleting the others."""
    targets = list(paths or [])
    if all_caches:
        every = [s.path for s in find_caches(cache_folder())]
        if every and not yes and not _confirmed(f"Delete all {len(every)} caches in {cache_folder()}?"):
            raise fail(f"--all deletes all {len(every)} caches in {cache_folder()}: add --yes to confirm; "
                       "nothing deleted.", EXIT_USAGE)
        targets += every
    if not targets:
        raise fail("Name the cache files to delete, or pass --all.", EXIT_USAGE)
    refused = 0
    for target in targets:
        try:
            delete_cache(target)
        except FeatxError as exc:
            typer.echo(f"error: {exc}", err=True)
            refused += 1
        else:
            typer.echo(f"deleted {target}")
    if refused:
        raise typer.Exit(1)


def _confirmed(question: str) -> bool:
    """Asked on a terminal; never assumed when nobody can answer (a script, CI)."""
    return sys.stdin.isatty() and typer.confirm(question, default=False)
