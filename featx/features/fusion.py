"""Feature fusion: one head on the vectors of several backbones for the same images.

``fuse_features([a, b])`` joins two caches of the same images by content id and puts their vectors
side by side (``a``'s first). The fused configuration records every part, in order
(``{"fused": [identity of a, identity of b]}``), so a head fitted on it knows which backbones make
its vectors: it evaluates on those caches again and predicts new images by embedding them with
each backbone. It has no single backbone to put under it, so fine-tuning and export refuse it.
The CLI names a fusion ``A+B`` (``featx fit-head --backbone A+B``, ``compare --backbones A,B,A+B``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from featx.cache import catalog
from featx.cache.catalog import CacheChoice
from featx.config import EmbedConfig, fingerprint_of
from featx.errors import FeatxError, OptionError
from featx.features.vectors import Features, load_features

FUSED = "fused"  # the configuration key that lists the parts of a fused configuration
SEPARATOR = "+"  # how the CLI joins backbone names into one fused name


def is_fused(config: dict) -> bool:
    return FUSED in config


def part_configs(config: dict, sources: dict) -> list[EmbedConfig]:
    """The backbone configuration of each part of a fused configuration, in order."""
    parts, part_sources = config[FUSED], sources.get(FUSED) or [{}] * len(config[FUSED])
    return [EmbedConfig.from_record(part, source) for part, source in zip(parts, part_sources)]


def display_name(config: dict, sources: dict, fingerprint: str | None = None) -> str:
    """``A+B`` for a fused configuration, the backbone's short name otherwise."""
    if is_fused(config):
        return SEPARATOR.join(c.display_name for c in part_configs(config, sources))
    return EmbedConfig.from_record(config, sources, fingerprint).display_name


def fuse_features(parts: Sequence[Features]) -> Features:
    """The images of ``parts[0]`` with every part's vectors side by side, joined by content id.

    Every part must hold the same images (content ids) with the same labels; otherwise a one-line
    :class:`FeatxError` says how they differ. Splits and paths are the first part's.
    """
    if len(parts) < 2:
        raise OptionError("fusing features needs two or more caches; got {param} with "
                          f"{len(parts)}.", param="parts")
    first = parts[0]
    columns = [np.asarray(first.X, np.float32)]
    first_labels = _labels(first)
    for part in parts[1:]:
        row_of = {cid: row for row, cid in enumerate(part.ids)}
        only_first = sum(1 for cid in set(first.ids) if cid not in row_of)
        only_part = len(set(part.ids) - set(first.ids))
        if only_first or only_part:
            raise FeatxError(
                f"cannot fuse {_where(first)} and {_where(part)}: they hold different images ({only_first} only in "
                f"the first, {only_part} only in the second); embed the same dataset with both backbones."
            )
        rows = np.asarray([row_of[cid] for cid in first.ids], np.int64)
        differ = int(np.sum(first_labels != _labels(part)[rows]))
        if differ:
            raise FeatxError(f"cannot fuse {_where(first)} and {_where(part)}: {differ} images have other labels "
                             "in one than in the other; embed the same dataset with both backbones.")
        columns.append(np.asarray(part.X[rows], np.float32))
    config = {FUSED: [dict(p.config) for p in parts]}
    sources = {FUSED: [dict(p.sources) for p in parts],
               "caches": [str(os.path.abspath(p.cache_path)) if p.cache_path else None for p in parts]}
    return first.replaced(X=np.hstack(columns), config=config, sources=sources, fingerprint=fingerprint_of(config))


def load_fused(caches: Sequence[str | os.PathLike]) -> Features:
    """The fused features of these cache files, in this order."""
    return fuse_features([load_features(cache) for cache in caches])


def fused_caches(sources: dict) -> list[str]:
    """The cache files fused features (or a head fitted on them) came from."""
    return [c for c in sources.get("caches", []) if c]


def cache_label(features: Features) -> str:
    """The cache file of ``features``, or ``a.h5 + b.h5`` for fused ones."""
    if is_fused(features.config):
        return " + ".join(fused_caches(features.sources))
    return str(features.cache_path)


def fused_names(backbone: str | None, param: str) -> list[str]:
    """The backbones of ``A+B`` (``[backbone]`` when not fused); refused, naming ``param``, when a part
    is empty or one backbone is fused with itself."""
    names = [n.strip() for n in (backbone or "").split(SEPARATOR)]
    if len(names) < 2:
        return names
    if not all(names):
        raise OptionError(f"{{param}} {backbone!r}: name two or more backbones joined by '+', e.g. "
                          "ResNet50+EfficientNetB0.", param=param)
    if len({n.lower() for n in names}) < len(names):
        raise OptionError(f"{{param}} {backbone!r} fuses a backbone with itself; join two or more different "
                          "backbones by '+', e.g. ResNet50+EfficientNetB0.", param=param)
    return names


def choose_features(cache: str | os.PathLike | None, backbone: str | None) -> tuple[Path | Features, list[CacheChoice]]:
    """What to fit a head on: the cache chosen by ``cache``/``backbone``, or for ``backbone="A+B"``
    the fused features of the latest cache of each part in the folder ``cache``; and the choices made."""
    names = fused_names(backbone, "backbone")
    if len(names) < 2:
        choice = catalog.choose_cache(cache, backbone)
        return choice.path, [choice]
    if cache is not None and Path(cache).is_file():
        raise OptionError(f"{{param}} {backbone!r} picks one cache per backbone from a cache folder; "
                          f"{cache} is a file: give its folder.", param="backbone")
    choices = [catalog.choose_cache(cache, name) for name in names]
    return load_fused([c.path for c in choices]), choices


def choose_compared(caches: Sequence[str | os.PathLike] = (), backbones: Sequence[str] = ()
                    ) -> tuple[list[Path | Features], list[CacheChoice]]:
    """What ``compare`` ranks heads on: :func:`~featx.cache.catalog.choose_caches`, where a backbone
    ``A+B`` is the fused features of the latest cache of each part; and the choices made. Empty
    names and names given twice are refused."""
    catalog.check_backbone_names(backbones, "backbones")
    for name in backbones:
        fused_names(name, "backbones")
    if not any(SEPARATOR in name for name in backbones):
        choices = catalog.choose_caches(caches, backbones)
        return [c.path for c in choices], choices
    if len(caches) > 1 or any(Path(c).is_file() for c in caches):
        raise OptionError("{param} takes one cache folder to pick backbones from, not cache files, when a "
                          "backbone is fused (A+B).", param="caches")
    sources, choices = [], []
    for name in backbones:
        source, chosen = choose_features(caches[0] if caches else None, name)
        sources.append(source)
        choices += [c for c in chosen if c.path not in {made.path for made in choices}]
    return sources, choices


def _labels(features: Features) -> np.ndarray:
    names = np.asarray(list(features.classes) + [""], dtype=object)
    return names[features.y]  # -1 (unlabelled) picks ""


def _where(features: Features) -> str:
    return str(features.cache_path) if features.cache_path else f"the {features.config.get('backbone')} features"
