"""How a damaged cache is reported: the one line every reader gives, and a failed read's cause."""

from __future__ import annotations

import json
import os

from featx.cache.segments import MAX_MAGNITUDE
from featx.errors import CacheError, DamagedCacheError


def damaged_cache(path: str | os.PathLike, problem: str) -> DamagedCacheError:
    """The one line every reader gives for a damaged cache."""
    return DamagedCacheError(f"damaged cache {path}: {problem}. Run 'featx cache verify' for every problem; delete "
                             "the cache and re-run 'featx embed' to rebuild it.", problem=problem)


def unusable_vectors(cache: str | os.PathLike, count: int | None = None) -> CacheError:
    """The error of a reader that meets NaN, infinite or absurd vectors: it never uses them, and a
    rerun of the embed re-embeds them."""
    how_many = f"{count} vectors" if count else "vectors"
    return CacheError(f"{cache} holds {how_many} with NaN, infinite or absurd values (magnitude above "
                      f"{MAX_MAGNITUDE:g}); re-run 'featx embed' to embed them again.")


def read_failure(exc: Exception) -> str:
    """The cause of a failed read, in a few words."""
    if isinstance(exc, KeyError):
        return f"missing {exc.args[0] if exc.args else 'a table'}"
    if isinstance(exc, json.JSONDecodeError):
        return "an attribute (config, sources or backends) is not JSON"
    return " ".join(str(exc).split())[:200] or type(exc).__name__
