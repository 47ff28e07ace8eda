"""The ``featx`` command line: a thin layer over the Python API."""

from __future__ import annotations

# Each module registers its commands; the import order is the order of `featx --help`.
from featx.cli import backbones, embed, cache, weights, heads, inspect, finetune, demo  # noqa: F401, I001
from featx.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "main"]
