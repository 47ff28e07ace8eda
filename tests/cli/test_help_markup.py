"""--help shows every word of the help texts: Rich reads ``[word]`` as a style tag and drops it (so
``pip install "featx[ray]"`` once printed as ``pip install "featx"``); such brackets are escaped."""

from __future__ import annotations

import re

import typer.main
from typer.testing import CliRunner

from featx.cli import app

TAG = re.compile(r"(?<!\\)\[[a-z_/ ]+\]")  # what Rich would take for markup


def _commands(command, path=()):
    yield path, command
    for name, sub in getattr(command, "commands", {}).items():
        yield from _commands(sub, (*path, name))


def test_no_help_text_loses_a_bracketed_word_to_markup():
    for path, command in _commands(typer.main.get_command(app)):
        texts = [command.help or ""] + [getattr(p, "help", None) or "" for p in command.params]
        for text in texts:
            assert not TAG.search(text), f"featx {' '.join(path)}: {text!r} needs its [ escaped as \\["


def test_the_embed_help_names_the_extras_to_install():
    shown = " ".join(CliRunner().invoke(app, ["embed", "--help"], terminal_width=200).output.split())
    assert 'pip install "featx[ray]"' in shown and "(featx[hub])" in shown
