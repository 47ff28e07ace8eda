"""The head folder format: ``head.json`` (plain, versioned JSON) and ``estimator.skops``.

Writing is atomic (a staging folder renamed into place). Reading never runs code from the files:
the estimator is read with skops' secure format trusting only the types the caller names (no
pickle, no ``trusted=True``), and ``head.json`` pins the estimator file by sha256. Anything else
is refused with a one-line :class:`CacheError`. This module knows the files, not the
:class:`~featx.heads.head.Head` built from them.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from featx.config import sha256_file
from featx.errors import CacheError, OptionError

HEAD_FORMAT = "featx-head"
HEAD_VERSION = 1
META_FILE = "head.json"
ESTIMATOR_FILE = "estimator.skops"

_TYPES = {"head": str, "params": dict, "classes": list, "config": dict, "sources": dict, "split": dict,
          "metrics": dict, "estimator": dict}
_REQUIRED = ("head", "params", "classes", "config", "sources", "fingerprint", "feature_dim", "split",
             "metrics", "fit_seconds", "cache", "featx_version", "created", "estimator")


def is_head_folder(path: Path) -> bool:
    return (path / META_FILE).is_file()


def write_head_folder(path: Path, estimator: object, meta: dict) -> None:
    """Write ``estimator`` and ``meta`` to the folder ``path``, replacing a head saved there."""
    import skops.io

    if path.exists() and not is_head_folder(path):
        raise OptionError(f"{{param}}: {path} exists and is not a featx head folder; choose another folder.",
                          param="path")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.saving-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        skops.io.dump(estimator, staging / ESTIMATOR_FILE)
        meta = {"format": HEAD_FORMAT, "version": HEAD_VERSION, **meta,
                "estimator": {"file": ESTIMATOR_FILE, "sha256": sha256_file(staging / ESTIMATOR_FILE)}}
        (staging / META_FILE).write_text(json.dumps(meta, indent=1, default=str))
        if path.exists():
            shutil.rmtree(path)
        staging.rename(path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def read_head_meta(path: Path, kinds: Iterable[str]) -> dict:
    """The checked contents of ``path/head.json``: this format and version, every field, a known kind."""
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CacheError(f"{path / META_FILE} is not a readable featx head file ({exc}).") from None
    if not isinstance(meta, dict) or meta.get("format") != HEAD_FORMAT:
        raise CacheError(f"{path / META_FILE} is not a featx head file.")
    if meta.get("version") != HEAD_VERSION:
        raise CacheError(
            f"{path} is a featx head of format version {meta.get('version')!r}; this featx reads version "
            f"{HEAD_VERSION}. Refit the head, or use the featx version that wrote it."
        )
    missing = [key for key in _REQUIRED if key not in meta]
    wrong = [key for key, kind in _TYPES.items() if key in meta and not isinstance(meta[key], kind)]
    if missing or wrong or meta["head"] not in kinds:
        detail = (f"missing {', '.join(missing)}" if missing else f"bad {', '.join(wrong)}" if wrong
                  else f"unknown head kind {meta['head']!r}")
        raise CacheError(f"{path / META_FILE} is damaged ({detail}); refit the head.")
    return meta


def read_estimator(path: Path, meta: dict, trusted: tuple[type | str, ...]) -> object:
    """The estimator of the head folder ``path``, if its bytes are those ``meta`` pinned and it
    holds only ``trusted`` types (beyond what skops trusts by default)."""
    import skops.io
    from skops.io.exceptions import UntrustedTypesFoundException

    file = path / ESTIMATOR_FILE
    if not file.is_file() or sha256_file(file) != meta["estimator"].get("sha256"):
        raise CacheError(f"{file} is missing or was modified after the head was saved; refusing to load it.")
    try:
        return skops.io.load(file, trusted=list(trusted))
    except UntrustedTypesFoundException as exc:
        raise CacheError(
            f"{file} holds types a featx {meta['head']} head never contains ({exc}); refusing to load it."
        ) from None
    except Exception as exc:  # a damaged or foreign file can fail in many ways; none is ours to show
        raise CacheError(f"{file} is not a readable skops file ({type(exc).__name__}: {exc}).") from None

