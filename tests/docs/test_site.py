"""The documentation site builds with no warning (mkdocs --strict: no broken link, no missing API
reference), and its CLI reference is generated from the command line, every command included."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import typer

from tests.docs.examples import ROOT


@pytest.mark.integration
@pytest.mark.timeout(600)
def test_mkdocs_builds_strict_with_every_command_in_the_cli_reference(tmp_path):
    pytest.importorskip("mkdocs", reason="the docs extra: pip install -e '.[docs]'")
    pytest.importorskip("mkdocstrings")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    page = (tmp_path / "site" / "cli" / "index.html").read_text()
    from featx.cli import app

    root = typer.main.get_command(app)
    context = root.context_class(root, info_name="featx")
    for name in root.list_commands(context):
        assert f"featx {name}" in page, f"featx {name} is missing from the CLI reference"
