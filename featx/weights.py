"""Moved to :mod:`featx.backbones.weights` (this path stays for code written against it)."""

from featx.backbones.weights import *  # noqa: F403
