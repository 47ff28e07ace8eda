"""Deleting a cache with everything that belongs to it (segments, shards, views, lock), and nothing else."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from featx.cache.locate import CACHE_SUFFIX, SEARCH_INDEX_SUFFIX, search_dir, views_caches, views_dir
from featx.cache.schema import ENCODING_TYPE, is_featx_file
from featx.errors import CacheError


def delete_cache(path: str | os.PathLike) -> None:
    """Remove a featx cache with its segment, shard and search-index folders, temporaries and lock,
    and its views caches; ``path`` may also name a folder or lock that a killed run left without a
    cache file (the lock or a folder of a cache that exists names nothing: refused). Refuses (CacheError, nothing
    deleted) anything that is not featx's, and a cache that a run is writing (CacheBusyError)."""
    from featx.cache.lock import cache_lock, lock_path
    from featx.cache.segments import SEGMENT_TYPE, segment_dir
    from featx.cache.shards import SHARD_TYPE, shard_dir
    from featx.cache.sweep import remove_stale_temporaries

    if not Path(path).name:  # "/", "." or "": a folder, never a cache
        raise CacheError(f"{os.fspath(path) or '.'} is a folder, not a featx cache; not deleted.")
    named = _cache_named_by(Path(path))
    if named != Path(path) and named.exists():  # a lock or folder of a cache: it names nothing by itself
        raise CacheError(f"{path} belongs to the cache {named}; name the cache itself to delete it. Not deleted.")
    path = named
    folders = {shard_dir(path): SHARD_TYPE, segment_dir(path): SEGMENT_TYPE}
    lock = lock_path(path)
    if not (path.exists() or lock.exists() or any(f.exists() for f in (*folders, search_dir(path)))):
        raise CacheError(f"No feature cache at {path}; 'featx cache ls' lists them.")
    if path.exists() and not (path.is_file() and is_featx_file(path, ENCODING_TYPE)):
        raise CacheError(f"{path} is not a featx cache (no {ENCODING_TYPE!r} mark); not deleted.")
    owned = {folder: _own_files(path, folder, kind) for folder, kind in folders.items()}
    owned[search_dir(path)] = _search_files(path)
    if lock.exists() and not (lock.is_file() and lock.stat().st_size == 0):
        raise CacheError(f"{lock} is not a featx lock (those are empty files); not deleted.")
    with cache_lock(path, wait=False):
        remove_stale_temporaries(path)
        path.unlink(missing_ok=True)  # first: the index, so no reader sees a cache without segments
        for folder, files in owned.items():
            for file in files:
                file.unlink(missing_ok=True)
            if folder.is_dir():
                with contextlib.suppress(OSError):  # a file put there since the check stays, with its folder
                    folder.rmdir()
    lock.unlink(missing_ok=True)
    _delete_views(path)


def _delete_views(path: Path) -> None:
    """Delete the views caches of ``path`` (each as a cache: checked, under its lock), then their folder."""
    folder = views_dir(path)
    if not folder.is_dir():
        return
    for views in views_caches(path):
        delete_cache(views)
    with contextlib.suppress(OSError):  # anything else put there stays, with its folder
        folder.rmdir()


def _cache_named_by(path: Path) -> Path:
    """The cache file that ``path`` names: itself, or the cache of a segment or shard folder or lock."""
    from featx.cache.lock import lock_path
    from featx.cache.segments import segment_dir
    from featx.cache.shards import shard_dir

    cache = path.with_suffix("")  # "x.h5.shards", "x.h5.segments", "x.h5.search" and "x.h5.lock" belong to "x.h5"
    named = (shard_dir(cache), segment_dir(cache), search_dir(cache), lock_path(cache))
    return cache if cache.suffix == CACHE_SUFFIX and path in named else path


def _own_files(path: Path, folder: Path, kind: str) -> list[Path]:
    """The files of a cache's shard or segment ``folder``: featx files of ``kind`` and a killed run's
    hidden temporaries; a CacheError (nothing deleted) when it holds anything else."""
    if not folder.exists():
        return []
    entries = sorted(folder.iterdir()) if folder.is_dir() else [folder]
    for entry in entries:
        temporary = entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file()
        if not temporary and not (entry.suffix == CACHE_SUFFIX and entry.is_file() and is_featx_file(entry, kind)):
            raise CacheError(f"{path} not deleted: its {folder.suffix[1:]} folder holds {entry}, which is not a featx "
                             f"{kind.rsplit('-', 1)[-1]} file; move that out first.")
    return entries


def _search_files(path: Path) -> list[Path]:
    """The files of a cache's search-index folder (featx.search.stored: ``*.faiss`` and temporaries);
    a CacheError (nothing deleted) when it holds anything else."""
    folder = search_dir(path)
    if not folder.exists():
        return []
    entries = sorted(folder.iterdir()) if folder.is_dir() else [folder]
    for entry in entries:
        temporary = entry.name.startswith(".") and entry.name.endswith(".tmp")
        if not entry.is_file() or not (temporary or entry.suffix == SEARCH_INDEX_SUFFIX):
            raise CacheError(f"{path} not deleted: its search folder holds {entry}, which is not a featx search "
                             "index; move that out first.")
    return entries
