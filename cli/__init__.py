"""The ``featx`` command line: a thin layer over the Python API."""

from __future__ import annotations

from featx.cli import backbones, cache, demo, embed, heads  # noqa: F401  (each module registers its commands)
from featx.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
