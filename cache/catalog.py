"""The catalogue of caches: listing and summarising them, and choosing the one to use."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py

from featx.cache.locate import CACHE_SUFFIX, cache_folder, views_caches
from featx.cache.schema import ENCODING_TYPE, check_schema, open_cache
from featx.data.records import LOOSE_FILES
from featx.errors import CacheNotFoundError, MissingFileError, OptionError, python_name


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
    layout: str = ""  # the dataset layout (featx.data.layouts), LOOSE_FILES for predict's and Embedder's
    backends: tuple[str, ...] = ()  # the Keras backends that computed its vectors (older caches: none recorded)
    views: tuple[dict, ...] = ()  # its augmented views caches (featx.engine.views): augment, views_per_image, vectors, path

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
    from featx.cache.damage import damaged_cache, read_failure
    from featx.cache.store import index_datasets

    try:
        missing = [name for name in index_datasets(h5) if name not in h5]
        if missing:
            raise damaged_cache(path, f"/{missing[0]} is missing")
        return _read_summary(path, h5)
    except (KeyError, ValueError, TypeError, AttributeError, RuntimeError) as exc:  # a part missing or retyped
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
        except (OSError, KeyError, ValueError, TypeError, RuntimeError):
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
        matching = [c for c in caches if _names_backbone(c.backbone, backbone)]
        if not matching:
            have = ", ".join(sorted({_backbone_name(c.backbone) for c in caches})) or "none"
            raise CacheNotFoundError(
                f"No cache of backbone {backbone!r} in {folder} (backbones cached: {have}). "
                f"Run 'featx embed --backbone {backbone} DATA' first."
            )
    if not matching:
        raise CacheNotFoundError(f"No feature cache in {folder}. Embed a dataset first ('featx embed DATA'), "
                                 "or give a cache file.")
    return matching[0].path, len(caches)


def _backbone_name(recorded: str) -> str:
    """How a user names the backbone a cache records: a ``.keras`` file by its file name
    (``custom:<file>:sha256:<hex>``), a transformer by its name or handle (``hub:<name>``)."""
    if recorded.startswith("custom:"):
        return recorded.split(":")[1]
    return recorded.removeprefix("hub:")


def _names_backbone(recorded: str, asked: str) -> bool:
    """Whether ``asked`` (a name, a file name or a path to the .keras file) names the recorded backbone."""
    asked = asked.strip().lower()
    name = _backbone_name(recorded).lower()
    return asked in (recorded.lower(), name) or (recorded.startswith("custom:") and Path(asked).name == name)


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
        if backbone is not None:
            raise OptionError(f"{{param}} {backbone!r} picks the latest cache of a backbone from a cache folder; "
                              f"{cache} is a cache file: give its folder, or leave {{param}} out.", param="backbone")
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
    check_backbone_names(backbones, "backbones")
    if backbones:
        return [choose_cache(folder, backbone) for backbone in backbones]
    if caches and not folders:
        return [CacheChoice(Path(c)) for c in caches]
    return [choose_cache(folder)]


def check_backbone_names(names: Sequence[str], param: str) -> None:
    """Refuse, naming ``param``, an empty backbone name or one given twice (names match ignoring case)."""
    seen: set[str] = set()
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise OptionError(f"{{param}} holds an empty backbone name ({list(names)!r:.80}); give backbone names, "
                              "e.g. ResNet50,EfficientNetB0.", param=param)
        if name.strip().lower() in seen:
            raise OptionError(f"{{param}} names {name.strip()!r} twice; give each backbone once.", param=param)
        seen.add(name.strip().lower())
