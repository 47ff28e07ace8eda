"""Where caches live: the cache folder, one file per (dataset, backbone configuration), listing."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py

from featx.cache.schema import ENCODING_TYPE, check_schema, open_cache
from featx.datasets import LOOSE_FILES
from featx.errors import CacheError, CacheNotFoundError, MissingFileError, OptionError, python_name

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


VIEWS_SUFFIX = ".views"  # <cache>.h5.views/ holds the caches of its augmented views, one per recipe


def views_dir(cache_path: str | os.PathLike) -> Path:
    """The folder of the views caches of the cache at ``cache_path`` (featx.views)."""
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


@dataclass(frozen=True)
class CacheSummary:
    """The attributes of one cache file, read without loading any vectors."""

    path: Path
    dataset: str
    backbone: str
    fingerprint: str
    images: int  # image files of the dataset at the last embed (skipped ones included)
    vectors: int  # distinct contents embedded
    skipped: int
    feature_dim: int
    updated: str
    config: dict
    layout: str = ""  # the dataset layout (featx.datasets), LOOSE_FILES for predict's and Embedder's
    backends: tuple[str, ...] = ()  # the Keras backends that computed its vectors (older caches: none recorded)
    views: tuple[dict, ...] = ()  # its augmented views caches (featx.views): augment, views_per_image, vectors, path

    @property
    def is_loose_files(self) -> bool:
        """A cache of loose files (predict, Embedder), not of a dataset: no labels to fit a head on."""
        return self.layout == LOOSE_FILES

    def to_dict(self) -> dict:
        return {**self.__dict__, "path": str(self.path), "backends": list(self.backends)}


def summarize(path: str | os.PathLike) -> CacheSummary:
    """The attributes and counts of the cache at ``path`` (CacheError if it is not one, or damaged:
    the checks every reader makes on open)."""
    from featx.cache.store import CacheIndex

    CacheIndex.read(path)
    with open_cache(path) as h5:
        return _summary(Path(path), h5)


def _summary(path: Path, h5: h5py.File) -> CacheSummary:
    from featx.cache.store import damaged_cache, index_datasets, read_failure

    missing = [name for name in index_datasets(h5) if name not in h5]
    if missing:
        raise damaged_cache(path, f"/{missing[0]} is missing")
    try:
        return _read_summary(path, h5)
    except (KeyError, ValueError, TypeError, AttributeError) as exc:  # a part missing or retyped
        raise damaged_cache(path, read_failure(exc)) from None


def _read_summary(path: Path, h5: h5py.File) -> CacheSummary:
    from featx.cache.store import config_attribute

    attrs = h5.attrs
    return CacheSummary(
        path=path,
        dataset=str(attrs.get("dataset", "")),
        backbone=str(attrs.get("backbone", "")),
        fingerprint=str(attrs.get("fingerprint", "")),
        images=len(h5["images/path"]),
        vectors=len(h5["vectors/id"]),
        skipped=len(h5["skipped/path"]),
        feature_dim=int(attrs.get("feature_dim", 0)),
        updated=str(attrs.get("updated", "")),
        config=config_attribute({key: attrs[key] for key in ("config", "sources", "backends") if key in attrs}),
        layout=str(attrs.get("layout", "")),
        backends=tuple(json.loads(attrs.get("backends", "[]"))),
        views=tuple(_views_summaries(path)),
    )


def _views_summaries(path: Path) -> Iterator[dict]:
    """What each views cache of ``path`` holds, from its attributes (an unreadable one is skipped:
    ``featx cache verify`` on its file says why)."""
    for views in views_caches(path):
        try:
            with h5py.File(views, "r") as h5:
                yield {"augment": str(h5.attrs.get("augment", "")), "views_per_image": int(h5.attrs.get("views", 0)),
                       "vectors": len(h5["vectors/id"]), "path": str(views)}
        except (OSError, KeyError, ValueError, TypeError):
            continue


def _featx_summary(path: Path) -> CacheSummary | None:
    """The summary of ``path`` if it is a featx cache, None for other files; opens it once."""
    try:
        h5 = h5py.File(path, "r")
    except OSError:
        return None
    with h5:
        if h5.attrs.get("encoding-type") != ENCODING_TYPE:
            return None
        check_schema(h5, path)
        return _summary(path, h5)


def find_caches(cache_dir: str | os.PathLike | None = None) -> list[CacheSummary]:
    """The featx caches in ``cache_dir``, most recently written first."""
    folder = cache_folder(cache_dir)
    if not folder.is_dir():
        return []
    files = sorted((p for p in folder.glob(f"*{CACHE_SUFFIX}") if not p.name.startswith(".")),
                   key=lambda p: p.stat().st_mtime_ns, reverse=True)
    return [summary for summary in map(_featx_summary, files) if summary is not None]


def cache_files(path: str | os.PathLike | None = None) -> list[Path]:
    """``path`` itself when it is a file; else the caches in that folder (default :func:`cache_folder`);
    each followed by its views caches (what ``cache verify`` and ``cache compact`` go through)."""
    target = cache_folder(path)
    caches = [target] if target.is_file() else [summary.path for summary in find_caches(target)]
    return [file for cache in caches for file in (cache, *views_caches(cache))]


def latest_cache(cache_dir: str | os.PathLike | None = None, backbone: str | None = None) -> Path:
    """The most recently written dataset cache, optionally of one backbone; a clear error when none fits."""
    return _latest(cache_folder(cache_dir), backbone)[0]


def _latest(folder: Path, backbone: str | None) -> tuple[Path, int]:
    """The latest dataset cache in ``folder`` (of ``backbone``), and how many dataset caches are there."""
    caches = [c for c in find_caches(folder) if not c.is_loose_files]
    matching = caches
    if backbone is not None:
        matching = [c for c in caches if c.backbone.lower() == backbone.lower()]
        if not matching:
            have = ", ".join(sorted({c.backbone for c in caches})) or "none"
            raise CacheNotFoundError(
                f"No cache of backbone {backbone!r} in {folder} (backbones cached: {have}). "
                f"Run 'featx embed --backbone {backbone} DATA' first."
            )
    if not matching:
        raise CacheNotFoundError(f"No feature cache in {folder}. Embed a dataset first ('featx embed DATA'), "
                                 "or give a cache file.")
    return matching[0].path, len(caches)


@dataclass(frozen=True)
class CacheChoice:
    """The cache a command works on, and how many dataset caches it was chosen among."""

    path: Path
    among: int = 1  # the dataset caches of the folder it is the latest of; 1 when given or alone

    def note(self, name: Callable[[str], str] = python_name) -> str:
        """``using cache PATH``, and when there was a choice, how to make another (``name`` names
        the parameters: the CLI passes its flags)."""
        if self.among < 2:
            return f"using cache {self.path}"
        return (f"using cache {self.path} (the latest of {self.among}; choose with {name('backbone')} "
                f"or {name('cache')})")


def choose_cache(cache: str | os.PathLike | None = None, backbone: str | None = None) -> CacheChoice:
    """The cache to fit or compare heads on: ``cache`` as given when it is a file; otherwise the
    latest dataset cache in the folder ``cache`` (default :func:`cache_folder`), of ``backbone``
    when given."""
    if cache is not None and Path(cache).is_file():
        return CacheChoice(Path(cache))
    if cache is not None and not Path(cache).exists():
        raise MissingFileError(f"{{param}} {cache} does not exist; give a .h5 cache file or a cache folder.",
                               param="cache")
    return CacheChoice(*_latest(cache_folder(cache), backbone))


def choose_caches(caches: Sequence[str | os.PathLike] = (), backbones: Sequence[str] = ()) -> list[CacheChoice]:
    """The caches to compare: ``caches`` are cache files, or one cache folder; ``backbones`` picks
    the latest cache of each of them (in that folder); with neither, the latest cache of all."""
    folders = [c for c in caches if not Path(c).is_file()]
    if len(folders) > 1 or (folders and len(caches) > 1) or (caches and not folders and backbones):
        raise OptionError("{param} takes .h5 cache files, or one cache folder (to pick backbones from).",
                          param="caches")
    folder = folders[0] if folders else None
    if backbones:
        return [choose_cache(folder, backbone) for backbone in backbones]
    if caches and not folders:
        return [CacheChoice(Path(c)) for c in caches]
    return [choose_cache(folder)]


def delete_cache(path: str | os.PathLike) -> None:
    """Remove a featx cache with its segment and shard folders, temporaries and lock, and its views
    caches; ``path`` may also name a folder or lock that a killed run left. Refuses (CacheError, nothing
    deleted) anything that is not featx's, and a cache that a run is writing (CacheBusyError)."""
    from featx.cache.lock import cache_lock, lock_path
    from featx.cache.segments import SEGMENT_TYPE, segment_dir
    from featx.cache.shards import SHARD_TYPE, shard_dir
    from featx.cache.store import remove_stale_temporaries

    path = _cache_named_by(Path(path))
    folders = {shard_dir(path): SHARD_TYPE, segment_dir(path): SEGMENT_TYPE}
    lock = lock_path(path)
    if not (path.exists() or lock.exists() or any(f.exists() for f in folders)):
        raise CacheError(f"No feature cache at {path}; 'featx cache ls' lists them.")
    if path.exists() and not (path.is_file() and _marked(path, ENCODING_TYPE)):
        raise CacheError(f"{path} is not a featx cache (no {ENCODING_TYPE!r} mark); not deleted.")
    owned = {folder: _own_files(path, folder, kind) for folder, kind in folders.items()}
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

    cache = path.with_suffix("")  # "x.h5.shards", "x.h5.segments" and "x.h5.lock" belong to "x.h5"
    named = (shard_dir(cache), segment_dir(cache), lock_path(cache))
    return cache if cache.suffix == CACHE_SUFFIX and path in named else path


def _own_files(path: Path, folder: Path, kind: str) -> list[Path]:
    """The files of a cache's shard or segment ``folder``: featx files of ``kind`` and a killed run's
    hidden temporaries; a CacheError (nothing deleted) when it holds anything else."""
    if not folder.exists():
        return []
    entries = sorted(folder.iterdir()) if folder.is_dir() else [folder]
    for entry in entries:
        temporary = entry.name.startswith(".") and entry.name.endswith(".tmp") and entry.is_file()
        if not temporary and not (entry.suffix == CACHE_SUFFIX and entry.is_file() and _marked(entry, kind)):
            raise CacheError(f"{path} not deleted: its {folder.suffix[1:]} folder holds {entry}, which is not a featx "
                             f"{kind.rsplit('-', 1)[-1]} file; move that out first.")
    return entries


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _marked(path: Path, kind: str) -> bool:
    """Whether ``path`` is a featx HDF5 file of ``kind`` (its encoding-type), even a damaged one:
    read by h5py, or else found near the start of a file that begins with HDF5's signature (featx
    writes the mark first, so a truncated cache still carries it)."""
    try:
        with h5py.File(path, "r") as h5:
            mark = h5.attrs.get("encoding-type")
        return (mark.decode() if isinstance(mark, bytes) else mark) == kind
    except (OSError, KeyError, RuntimeError, ValueError):  # not HDF5, or damaged
        pass
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
    except OSError:
        return False
    return head.startswith(_HDF5_SIGNATURE) and kind.encode() in head
