"""Saving and loading heads: a folder with ``head.json`` and ``estimator.skops``.

Loading never runs code from the files: the estimator is read with skops' secure format and only
the types its head kind is made of are trusted (no pickle, no ``trusted=True``); ``head.json``
is plain JSON, versioned, and pins the estimator file by sha256. Anything else is refused with a
one-line :class:`FeatxError`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

from featx.cache.locate import cache_folder
from featx.config import EmbedConfig, fingerprint_of, sha256_file
from featx.errors import FeatxError
from featx.heads.head import Head
from featx.heads.registry import HEADS

HEAD_FORMAT = "featx-head"
HEAD_VERSION = 1
META_FILE = "head.json"
ESTIMATOR_FILE = "estimator.skops"
HEADS_FOLDER = "heads"


def default_head_path(head: Head) -> Path:
    """``<cache dir>/heads/<kind>-<backbone>``, numbered ``-2``, ``-3``... when taken."""
    folder = Path(head.cache_path).parent if head.cache_path else cache_folder()
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{head.kind}-{head.backbone_name}")
    path, n = folder / HEADS_FOLDER / stem, 1
    while path.exists():
        n += 1
        path = folder / HEADS_FOLDER / f"{stem}-{n}"
    return path


def save_head(head: Head, path: str | os.PathLike | None = None) -> Path:
    """Write ``head`` to the folder ``path`` (replacing a head saved there) and return it."""
    import skops.io

    path = Path(path) if path is not None else default_head_path(head)
    if path.exists() and not (path / META_FILE).is_file():
        raise FeatxError(f"{path} exists and is not a featx head folder; choose another -o path.")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.saving-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        skops.io.dump(head.estimator, staging / ESTIMATOR_FILE)
        meta = {
            "format": HEAD_FORMAT,
            "version": HEAD_VERSION,
            **{k: v for k, v in head.describe().items() if k not in ("name", "path", "backbone", "split")},
            "sources": head.sources,
            "split": head.split,
            "estimator": {"file": ESTIMATOR_FILE, "sha256": sha256_file(staging / ESTIMATOR_FILE)},
        }
        (staging / META_FILE).write_text(json.dumps(meta, indent=1, default=str))
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    head.path = path
    return path


def load_head(path: str | os.PathLike) -> Head:
    """Read a head folder written by :func:`save_head` (or its ``head.json``)."""
    path = Path(path)
    if path.name == META_FILE:
        path = path.parent
    if not (path / META_FILE).is_file():
        what = "does not exist" if not path.exists() else f"has no {META_FILE}"
        raise FeatxError(f"{path} {what}; give a head folder written by 'featx fit-head'.")
    meta = _read_meta(path)
    spec = HEADS[meta["head"]]
    estimator_file = path / ESTIMATOR_FILE
    if not estimator_file.is_file() or sha256_file(estimator_file) != meta["estimator"].get("sha256"):
        raise FeatxError(f"{estimator_file} is missing or was modified after the head was saved; refusing to load it.")
    estimator = _load_estimator(estimator_file, spec)
    try:
        expected = type(spec.make(**meta["params"]))
    except FeatxError as exc:
        raise FeatxError(f"{path / META_FILE} is damaged ({exc}); refit the head.") from None
    if type(estimator) is not expected or not hasattr(estimator, "classes_"):
        raise FeatxError(f"{estimator_file} does not hold a fitted {meta['head']} head; refusing to load it.")
    if fingerprint_of(meta["config"]) != meta["fingerprint"]:
        raise FeatxError(f"{path / META_FILE} is inconsistent: its backbone configuration does not match its "
                         "fingerprint; refusing to load it.")
    try:
        EmbedConfig.from_record(meta["config"], meta["sources"])
    except TypeError as exc:
        raise FeatxError(f"{path / META_FILE} is damaged ({exc}); refit the head.") from None
    return Head(
        kind=meta["head"], estimator=estimator, params=meta["params"], classes=tuple(meta["classes"]),
        config=meta["config"], sources=meta["sources"], fingerprint=meta["fingerprint"],
        feature_dim=int(meta["feature_dim"]), split=meta["split"], metrics=meta["metrics"],
        fit_seconds=float(meta["fit_seconds"]), cache_path=meta["cache"], featx_version=meta["featx_version"],
        created=meta["created"], path=path,
    )


_TYPES = {"head": str, "params": dict, "classes": list, "config": dict, "sources": dict, "split": dict,
          "metrics": dict, "estimator": dict}
_REQUIRED = ("head", "params", "classes", "config", "sources", "fingerprint", "feature_dim", "split",
             "metrics", "fit_seconds", "cache", "featx_version", "created", "estimator")


def _read_meta(path: Path) -> dict:
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FeatxError(f"{path / META_FILE} is not a readable featx head file ({exc}).") from None
    if not isinstance(meta, dict) or meta.get("format") != HEAD_FORMAT:
        raise FeatxError(f"{path / META_FILE} is not a featx head file.")
    if meta.get("version") != HEAD_VERSION:
        raise FeatxError(
            f"{path} is a featx head of format version {meta.get('version')!r}; this featx reads version "
            f"{HEAD_VERSION}. Refit the head, or use the featx version that wrote it."
        )
    missing = [key for key in _REQUIRED if key not in meta]
    wrong = [key for key, kind in _TYPES.items() if key in meta and not isinstance(meta[key], kind)]
    if missing or wrong or meta["head"] not in HEADS:
        detail = (f"missing {', '.join(missing)}" if missing else f"bad {', '.join(wrong)}" if wrong
                  else f"unknown head kind {meta['head']!r}")
        raise FeatxError(f"{path / META_FILE} is damaged ({detail}); refit the head.")
    return meta


def find_heads(cache_dir: str | os.PathLike | None = None) -> list[Path]:
    """The head folders under ``<cache dir>/heads``, most recently saved first."""
    folder = cache_folder(cache_dir)
    found = [p.parent for p in (folder / HEADS_FOLDER).glob(f"*/{META_FILE}") if not p.parent.name.startswith(".")]
    return sorted(found, key=lambda p: (p / META_FILE).stat().st_mtime_ns, reverse=True)


def _load_estimator(file: Path, spec) -> object:
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    try:
        return skops.io.load(file, trusted=list(spec.trusted))
    except UntrustedTypesFoundException as exc:
        raise FeatxError(
            f"{file} holds types a featx {spec.name} head never contains ({exc}); refusing to load it."
        ) from None
    except Exception as exc:  # a damaged or foreign file can fail in many ways; none is ours to show
        raise FeatxError(f"{file} is not a readable skops file ({type(exc).__name__}: {exc}).") from None
