"""Finding and loading saved heads: by folder or by name, checked before anything is trusted.

A saved head is a folder in the format of :mod:`featx.heads.headfile`; by default heads are saved
under ``<cache folder>/heads/``, so a head there can be named by its folder name alone.
"""

from __future__ import annotations

import os
from pathlib import Path

from featx.cache.locate import cache_folder
from featx.checks import check_path
from featx.config import EmbedConfig, fingerprint_of
from featx.errors import CacheError, FeatxError, MissingFileError
from featx.features.fusion import is_fused, part_configs
from featx.heads.head import HEADS_FOLDER, Head
from featx.heads.headfile import (
    META_FILE,
    aside_targets,
    is_head_folder,
    read_estimator,
    read_head_meta,
    recover_head_folder,
)
from featx.heads.registry import HEADS


def save_head(head: Head, path: str | os.PathLike | None = None) -> Path:
    """Write ``head`` to the folder ``path`` and return it; the same as ``head.save(path)``."""
    return head.save(path)


def head_folder(head: str | os.PathLike, cache_dir: str | os.PathLike | None = None) -> Path:
    """The folder of ``head``: a head folder (or its ``head.json``) as given, or the name of a
    head saved in ``<cache_dir>/heads`` (default :func:`~featx.cache.locate.cache_folder`)."""
    path = Path(head)
    if path.name == META_FILE:
        path = path.parent
    recover_head_folder(path)
    if path.exists():
        if not is_head_folder(path):
            raise CacheError(f"{path} has no {META_FILE}; give a head folder written by 'featx fit-head'.")
        return path
    named = cache_folder(cache_dir) / HEADS_FOLDER / path
    if len(path.parts) == 1:
        recover_head_folder(named)
    if len(path.parts) == 1 and is_head_folder(named):
        return named
    raise MissingFileError(
        f"{path} does not exist; give a head folder written by 'featx fit-head', or the name of one in "
        f"{named.parent}."
    )


def load_head(head: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None) -> Head:
    """Read a saved head: its folder (or ``head.json``), or its name in ``<cache_dir>/heads``.

    Nothing in the files runs: the estimator may hold only the types its kind of head is made of,
    its bytes must be those ``head.json`` pinned, and the backbone configuration must match its
    fingerprint; anything else is a one-line :class:`~featx.errors.CacheError`.

    >>> load_head("logreg-Xception")  # doctest: +SKIP
    """
    check_path("head", head)
    check_path("cache_dir", cache_dir, optional=True)
    path = head_folder(head, cache_dir)
    meta = read_head_meta(path, HEADS)
    spec = HEADS[meta["head"]]
    estimator = read_estimator(path, meta, spec.trusted)
    try:
        expected = type(spec.make(**meta["params"]))
    except FeatxError as exc:
        raise CacheError(f"{path / META_FILE} is damaged ({exc}); refit the head.") from None
    if type(estimator) is not expected or not hasattr(estimator, "classes_"):
        raise CacheError(f"{path} does not hold a fitted {meta['head']} head; refusing to load it.")
    _check_estimator_matches(path, estimator, meta)
    if fingerprint_of(meta["config"]) != meta["fingerprint"]:
        raise CacheError(f"{path / META_FILE} is inconsistent: its backbone configuration does not match its "
                         "fingerprint; refusing to load it.")
    try:
        if is_fused(meta["config"]):
            part_configs(meta["config"], meta["sources"])
        else:
            EmbedConfig.from_record(meta["config"], meta["sources"])
    except (TypeError, KeyError, AttributeError) as exc:
        raise CacheError(f"{path / META_FILE} is damaged ({exc}); refit the head.") from None
    return Head(
        kind=meta["head"], estimator=estimator, params=meta["params"], classes=tuple(meta["classes"]),
        config=meta["config"], sources=meta["sources"], fingerprint=meta["fingerprint"],
        feature_dim=int(meta["feature_dim"]), split=meta["split"], metrics=meta["metrics"],
        fit_seconds=float(meta["fit_seconds"]), cache_path=meta["cache"], featx_version=meta["featx_version"],
        created=meta["created"], path=path,
        name=str(meta.get("name") or path.name),  # heads saved before names were stored: their folder's
        views=meta.get("views") or {},  # heads saved before views existed trained on plain vectors
    )


def _check_estimator_matches(path: Path, estimator: object, meta: dict) -> None:
    """Refuse a head.json whose classes or width do not fit its estimator (edited by hand)."""
    import numpy as np

    try:
        labels = np.asarray(estimator.classes_, dtype=np.int64)
    except (TypeError, ValueError):
        labels = None
    width = getattr(estimator, "n_features_in_", meta["feature_dim"])
    if labels is None or (labels.size and (labels.min() < 0 or labels.max() >= len(meta["classes"]))):
        problem = f"its {len(meta['classes'])} classes do not cover the estimator's labels"
    elif width != meta["feature_dim"]:
        problem = f"feature_dim {meta['feature_dim']} is not the estimator's {width}"
    else:
        return
    raise CacheError(f"{path / META_FILE} is damaged ({problem}); not a readable featx head: refit it.")


def find_heads(cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """The head folders under ``<cache dir>/heads``, most recently saved first."""
    folder = cache_folder(cache_dir) / HEADS_FOLDER
    for path in aside_targets(folder):
        recover_head_folder(path)
    found = [p.parent for p in folder.glob(f"*/{META_FILE}") if not p.parent.name.startswith(".")]
    return sorted(found, key=lambda p: (p / META_FILE).stat().st_mtime_ns, reverse=True)
