"""Where caches live: the cache folder, one file per (dataset, backbone configuration), listing."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

CACHE_DIR_ENV = "FEATX_CACHE_DIR"
DEFAULT_CACHE_DIR = ".featx"
CACHE_SUFFIX = ".h5"
LOOSE_FILES_PREFIX = "files"


def cache_folder(folder: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``folder`` when given, else ``$FEATX_CACHE_DIR``, else ``.featx`` here."""
    if folder is not None:
        return Path(folder)
    return Path(os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR)


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("._") or "data"


def cache_path_for(cache: str | os.PathLike | None, source: Path, display_name: str, fingerprint: str,
                   *, loose_files: bool = False) -> Path:
    """Where the cache of one source under one backbone configuration lives.

    ``cache`` is a ``.h5`` file (used as it is), a folder, or None for :func:`cache_folder`. A
    dataset's cache is named after its source path; loose files (predict, Embedder) share one
    cache per configuration, ``files--<backbone>--<fingerprint>.h5``.
    """
    if cache is not None and str(cache).endswith(CACHE_SUFFIX):
        return Path(cache)
    folder = cache_folder(cache)
    if loose_files:
        return folder / f"{LOOSE_FILES_PREFIX}--{_slug(display_name)}--{fingerprint}{CACHE_SUFFIX}"
    key = hashlib.sha256(f"{source}|{fingerprint}".encode()).hexdigest()[:12]
    name = source.stem if source.is_file() else source.name
    return folder / f"{_slug(name)}--{_slug(display_name)}--{key}{CACHE_SUFFIX}"


SEARCH_SUFFIX = ".search"  # <cache>.h5.search/ holds the approximate search index of each segment (featx.search)
SEARCH_INDEX_SUFFIX = ".faiss"  # one file per segment there


def search_dir(cache_path: str | os.PathLike) -> Path:
    """The folder of the search indexes of the cache at ``cache_path``."""
    cache_path = Path(cache_path)
    return cache_path.with_name(cache_path.name + SEARCH_SUFFIX)


def search_index_path(cache_path: str | os.PathLike, segment: str, digest: str, fingerprint: str) -> Path:
    """Where the search index of one segment file (its name, digest) of a cache of ``fingerprint`` lives:
    the name says what it indexes, so a stale one is known without opening it."""
    return search_dir(cache_path) / f"{Path(segment).stem}--{digest[:16]}--{fingerprint[:16]}{SEARCH_INDEX_SUFFIX}"


VIEWS_SUFFIX = ".views"  # <cache>.h5.views/ holds the caches of its augmented views, one per recipe


def views_dir(cache_path: str | os.PathLike) -> Path:
    """The folder of the views caches of the cache at ``cache_path`` (featx.engine.views)."""
    cache_path = Path(cache_path)
    return cache_path.with_name(cache_path.name + VIEWS_SUFFIX)


def views_cache_path(cache_path: str | os.PathLike, augment: str, fingerprint: str) -> Path:
    """Where the views of recipe ``augment`` (fingerprint ``fingerprint``) of a cache live."""
    return views_dir(cache_path) / f"{_slug(augment.replace(',', '+'))}--{fingerprint}{CACHE_SUFFIX}"


def views_caches(cache_path: str | os.PathLike) -> list[Path]:
    """The views caches of the cache at ``cache_path`` (one per recipe), by name."""
    folder = views_dir(cache_path)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob(f"*{CACHE_SUFFIX}") if not p.name.startswith("."))


