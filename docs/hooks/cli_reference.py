"""MkDocs hook: the CLI reference is generated from the Typer app at build time, never written by hand.

A page holding the line ``<!-- featx-cli-reference -->`` gets, in its place, every command of
``featx`` (groups recursively, in ``featx --help`` order): its help, usage, arguments and options
with their defaults — what ``featx COMMAND --help`` prints, as Markdown.
"""

from __future__ import annotations

import typer

MARKER = "<!-- featx-cli-reference -->"


def on_page_markdown(markdown: str, page, config, files) -> str:
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, cli_reference())


def cli_reference() -> str:
    from featx.cli import app

    root = typer.main.get_command(app)
    return "\n".join(_command(root, "featx", level=2))


def _command(command, path: str, level: int) -> list[str]:
    """Typer runs on its own copy of click (typer._click): the command's own classes are used, not click's."""
    context = command.context_class(command, info_name=path)
    lines = [f"{'#' * level} `{path}`", "", _text(command.help), ""]
    usage = " ".join(command.collect_usage_pieces(context))
    lines += ["```text", f"{path} {usage}".rstrip(), "```", ""]
    rows = [row for p in command.params if not getattr(p, "hidden", False) and (row := _param(p, context))]
    if rows:
        lines += ["| argument or option | what it is |", "| --- | --- |", *rows, ""]
    if hasattr(command, "list_commands"):
        for name in command.list_commands(context):
            sub = command.get_command(context, name)
            if sub is not None and not sub.hidden:
                lines += _command(sub, f"{path} {name}", min(level + 1, 4))
    return lines


def _param(param, context) -> str | None:
    """A table row from what ``--help`` prints for the parameter (names, then help with its default)."""
    record = param.get_help_record(context)
    if record is None:
        return None
    names, what = record
    return f"| `{names}` | {_text(what)} |"


def _text(text: str | None) -> str:
    """One Markdown line: the help text without its line breaks, and pipes escaped for the table."""
    return " ".join((text or "").split()).replace("|", "\\|")
