"""The one rule every command that writes follows, checked before any work: an output never lands
on featx's own files (a cache, its index, segments, shards, lock, views or search index), on one of the command's
inputs, or on another output of the same command; an existing folder holding files the command
would write is refused unless forced. Each refusal is one OptionError naming the parameter."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from featx.cache.locate import CACHE_SUFFIX, SEARCH_SUFFIX, VIEWS_SUFFIX
from featx.cache.schema import ENCODING_TYPE, is_featx_file
from featx.errors import OptionError

PathLike = str | os.PathLike
_OWN_SUFFIXES = (".lock", ".shards", ".segments", VIEWS_SUFFIX, SEARCH_SUFFIX)  # what sits beside a cache <name>.h5


def featx_owned(path: PathLike) -> str | None:
    """What of featx's ``path`` is (``"a featx cache"``, ``"the lock of the cache x.h5"``, ...), or None
    for a user's path. A path inside a cache's shard, segment or views folder is featx's too."""
    path = Path(os.path.abspath(path))
    for part in (path, *path.parents):
        for suffix in _OWN_SUFFIXES:
            if part.name.endswith(CACHE_SUFFIX + suffix):
                kind = suffix.lstrip(".")
                return f"the {kind} of the cache {part.name[: -len(suffix)]}" if part == path else \
                    f"inside the {kind} folder of the cache {part.name[: -len(suffix)]}"
    if path.is_file() and is_featx_file(path, ENCODING_TYPE):
        return "a featx cache"
    return None


def check_outputs(outputs: Mapping[str, PathLike | None], *,
                  inputs: Mapping[str, PathLike | Iterable[PathLike] | None] = {},
                  writes: Mapping[str, Iterable[str]] = {}, suffixes: Mapping[str, tuple[str, ...]] = {},
                  force: bool = False) -> None:
    """Refuse, before any work, outputs that would destroy something or that cannot be written.

    ``outputs`` and ``inputs`` map each Python parameter to its path or paths (None: not given).
    ``writes`` names, for an output that is a folder, the files the command writes in it: an existing
    folder holding one of them is refused unless ``force``. ``suffixes`` lists the file types an
    output may have (a plot's image formats).
    """
    given = {param: Path(path) for param, path in outputs.items() if path is not None}
    sources = [(param, Path(path)) for param, paths in inputs.items() if paths is not None
               for path in ([paths] if isinstance(paths, (str, os.PathLike)) else paths)]
    seen: dict[Path, str] = {}
    for param, path in given.items():
        allowed = suffixes.get(param)
        if allowed and path.suffix.lower() not in allowed:
            raise OptionError(f"{{param}} {path}: featx writes it as {', '.join(s[1:] for s in allowed)}; end the "
                              f"name in one of {', '.join(allowed)}.", param=param)
        owned = featx_owned(path)
        if owned is not None:
            raise OptionError(f"{{param}} {path} is {owned}: featx never writes over its own files; choose "
                              "another path.", param=param)
        for source_param, source in sources:
            if _same(path, source):
                raise OptionError(f"{{param}} {path} is the {source_param.replace('_', ' ')} this command reads; "
                                  "choose another path.", param=param)
        key = Path(os.path.realpath(path))
        if key in seen:
            raise OptionError(f"{{param}} {path} is also where {seen[key].replace('_', ' ')} is written: one would "
                              "replace the other; give each its own path.", param=param)
        seen[key] = param
        names = list(writes.get(param, ()))
        if names and path.is_dir() and not force:
            clash = [name for name in names if (path / name).exists()]
            if clash:
                raise OptionError(f"{{param}} {path} already holds {', '.join(clash)}; choose an empty or new "
                                  "folder, or pass --force to replace them.", param=param)


def _same(a: Path, b: Path) -> bool:
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False

