"""Moved to :mod:`featx.model.export` (this path stays for code written against it)."""

from featx.model.export import *  # noqa: F403
