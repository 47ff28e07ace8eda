"""The Typer application and what every command shares: one-line errors, JSON output, console."""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, TypeVar

import typer

from featx.errors import OptionError, as_featx_error

BackendOption = Annotated[
    str | None,
    typer.Option(help="Keras backend: tensorflow, jax or torch (default: $KERAS_BACKEND, else tensorflow)."),
]


# Typer (0.26+) runs on its own copy of click, the private typer._click, and raises click's errors (usage
# errors, FileError) from it, not from the click package; their public base class is typer.TyperException
# (Typer 0.27.2+: the floor in pyproject.toml). The error no_args_is_help raises is not public: like Typer
# itself (typer.rich_utils), featx knows it by its name.
ClickErrors = typer.TyperException


def _is_no_args_help(exc: BaseException) -> bool:
    return type(exc).__name__ == "NoArgsIsHelpError"


class OneLineUsageErrors(typer.core.TyperGroup):
    """The top-level command group; click's usage errors (an unknown option, a value of the wrong
    type, a missing argument) become one line on stderr and exit 2, like featx's own option errors."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except ClickErrors as exc:
            if _is_no_args_help(exc):  # the help, which Typer's rich formatting printed already
                if exc.format_message().strip():
                    typer.echo(exc.format_message(), err=True)
                sys.exit(EXIT_USAGE)
            command = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "featx"
            message = " ".join(exc.format_message().split())
            typer.echo(f"error: {message} (see '{command} --help')", err=True)
            sys.exit(exc.exit_code)
        except typer.Abort:
            typer.echo("aborted.", err=True)
            sys.exit(EXIT_ERROR)
        sys.exit(code if isinstance(code, int) else 0)


app = typer.Typer(
    cls=OneLineUsageErrors,
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
    exit 2 for a bad option value, 1 otherwise; Ctrl-C into exit 130; never a traceback.

    Failures of the system, HDF5 or NumPy (a read-only folder, a full disk, a name too long, memory
    exhausted) become featx errors here (:func:`featx.errors.as_featx_error`), for every command;
    anything else is a bug, told in one line too (``FEATX_DEBUG=1`` shows the traceback)."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (typer.Exit, typer.Abort, ClickErrors):
            raise
        except KeyboardInterrupt:
            typer.echo("interrupted; committed work is kept, rerun to continue.", err=True)
            raise typer.Exit(130) from None
        except Exception as exc:
            error = as_featx_error(exc)
            if error is None:
                if os.environ.get("FEATX_DEBUG"):
                    raise
                text = " ".join(str(exc).split())[:300]
                raise fail(f"unexpected {type(exc).__name__}: {text} (a bug in featx: please report it; "
                           "FEATX_DEBUG=1 shows where)") from None
            flags = flag_names(command)
            message = " ".join(error.render(lambda param: _flag(flags, param)).split())
            raise fail(message, EXIT_USAGE if isinstance(error, OptionError) else EXIT_ERROR) from None

    return wrapper  # type: ignore[return-value]


def _flag(flags: dict[str, str], param: str) -> str:
    """How a command line names ``param``: its flag, or for a head parameter ``--param name`` (set
    with ``-p name=value``), else the flag its name would have."""
    if param in flags:
        return flags[param]
    return f"{flags['param']} {param}" if "param" in flags else "--" + param.replace("_", "-")


def path_argument(text: str) -> Path:
    """A path argument as typed: an empty one is refused (Path("") would mean the current folder)."""
    if not text:
        raise typer.BadParameter("an empty path; give a file or folder ('.' for the current folder).")
    return Path(text)


def print_json(data: object) -> None:
    """One JSON document on stdout, for scripts."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def info(message: str, quiet: bool = False) -> None:
    """Human-readable progress on stderr, so stdout stays clean for --json."""
    if not quiet:
        typer.echo(message, err=True)
