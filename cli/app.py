"""The Typer application and what every command shares: one-line errors, JSON output, console."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from typing import TypeVar

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


def handle_errors(command: F) -> F:
    """Turn FeatxError into one line on stderr and exit 1; Ctrl-C into exit 130, no traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except OptionError as exc:
            raise fail(str(exc), EXIT_USAGE) from None
        except FeatxError as exc:
            raise fail(str(exc)) from None
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
