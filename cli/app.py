"""The Typer application and what every command shares: one-line errors, JSON output, console."""

from __future__ import annotations

import functools
import inspect
import json
import sys
import typing
from collections.abc import Callable
from typing import Annotated, TypeVar

import typer

from featx.errors import FeatxError, OptionError

BackendOption = Annotated[
    str | None,
    typer.Option(help="Keras backend: tensorflow, jax or torch (default: $KERAS_BACKEND, else tensorflow)."),
]

app = typer.Typer(
    name="featx",
    help="Transfer learning on images: embed once with a frozen Keras backbone, fit heads in seconds.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        from featx._versions import featx_version

        typer.echo(f"featx {featx_version()}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="Print featx's version and exit.")
    ] = False,
) -> None:
    """Transfer learning on images: embed once with a frozen Keras backbone, fit heads in seconds."""


cache_app = typer.Typer(help="Inspect the feature caches.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")
weights_app = typer.Typer(help="ImageNet weights offline: which file each backbone needs, and importing it.",
                          no_args_is_help=True)
app.add_typer(weights_app, name="weights")

F = TypeVar("F", bound=Callable)

EXIT_ERROR = 1  # the command failed (bad input file, nothing to do, ...)
EXIT_USAGE = 2  # a bad option value, as click reports its own usage errors


def fail(message: str, code: int = EXIT_ERROR) -> typer.Exit:
    """Print ``error: message`` on stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def flag_names(command: Callable) -> dict[str, str]:
    """How ``command`` spells each Python parameter: its long flag (``--pooling``) or its argument
    (``DATA``), read from the Typer annotations of its signature."""
    names = {}
    hints = typing.get_type_hints(command, include_extras=True)
    for name in inspect.signature(command).parameters:
        spec = next((m for m in getattr(hints.get(name), "__metadata__", ())
                     if isinstance(m, (typer.models.OptionInfo, typer.models.ArgumentInfo))), None)
        if isinstance(spec, typer.models.ArgumentInfo):
            names[name] = spec.metavar or name.upper()
            continue
        declared = [d for d in (spec.default, *spec.param_decls) if isinstance(d, str) and d.startswith("--")] if spec else []
        names[name] = declared[0] if declared else "--" + name.replace("_", "-")
    return names


def handle_errors(command: F) -> F:
    """Turn FeatxError into one line on stderr (its parameter named as this command's flag) and
    exit 2 for a bad option value, 1 otherwise; Ctrl-C into exit 130; never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except FeatxError as exc:
            flags = flag_names(command)
            message = exc.render(lambda param: flags.get(param, "--" + param.replace("_", "-")))
            raise fail(message, EXIT_USAGE if isinstance(exc, OptionError) else EXIT_ERROR) from None
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
