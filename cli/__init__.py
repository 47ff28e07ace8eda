"""The ``featx`` command line: a thin layer over the Python API."""

from __future__ import annotations

# Each module registers its commands; the import order is the order of `featx --help`.
# isort: off
from featx.cli import backbones, embed, cache, weights, heads, inspect, search, finetune, demo  # noqa: F401
# isort: on
from featx.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
