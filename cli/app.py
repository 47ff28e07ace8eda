"""The Typer application and what every command shares: one-line errors, JSON output, console."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import TypeVar

import click
import typer

from featx.errors import FeatxError, OptionError

app = typer.Typer(
    name="featx",
    help="Transfer learning on images: embed once with a frozen Keras backbone, fit heads in seconds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
cache_app = typer.Typer(help="Inspect the feature caches.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")

F = TypeVar("F", bound=Callable)

EXIT_ERROR = 1  # the command failed (bad input file, nothing to do, ...)
EXIT_USAGE = 2  # a bad option value, as click reports its own usage errors


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print ``error: message`` on stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def flag_name(param: str) -> str:
    """How the running command spells the Python parameter ``param``: its flag (``--pooling``),
    its argument (``DATA``), or ``--param-name`` when the command has no such parameter."""
    context = click.get_current_context(silent=True)
    for option in context.command.params if context else ():
        if option.name == param:
            if isinstance(option, click.Argument):
                return option.human_readable_name
            return max(option.opts, key=lambda o: (o.startswith("--"), len(o)))
    return "--" + param.replace("_", "-")


def handle_errors(command: F) -> F:
    """Turn FeatxError into one line on stderr (its parameter named as this command's flag) and
    exit 2 for a bad option value, 1 otherwise; Ctrl-C into exit 130; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except FeatxError as exc:
            code = EXIT_USAGE if isinstance(exc, OptionError) else EXIT_ERROR
            raise fail(exc.render(flag_name), code) from None
        except KeyboardInterrupt:
            typer.echo("interrupted; committed work is kept, rerun to continue.", err=True)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def print_json(data: object) -> None:
    """One JSON document on stdout, for scripts."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def info(message: str, quiet: bool = False) -> None:
    """Human-readable progress on stderr, so stdout stays clean for --json."""
    if not quiet:
        typer.echo(message, err=True)
