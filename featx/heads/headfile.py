"""The head folder format: ``head.json`` (plain, versioned JSON) and ``estimator.skops``.

Writing is atomic: a new head is written in a staging folder; a head saved there before is renamed
aside, the new one renamed into place, then the old one deleted, and whatever a killed process left
half done is finished on the next load or save (:func:`recover_head_folder`), so the folder always
holds the old head or the new one. Reading never runs code from the files: the estimator is read
with skops' secure format trusting only the types the caller names (no pickle, no ``trusted=True``);
``head.json`` pins the estimator file by sha256 and, since format version 2, itself by a checksum of
its canonical content, so an edited head (its classes, say) is refused instead of relabelling
predictions. Heads of version 1 (no checksum) still load, their estimator pinned as before. Anything
else is refused with a one-line :class:`CacheError`. This module knows the files, not the
:class:`~featx.heads.head.Head` built from them.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import shutil
from collections.abc import Iterable
from pathlib import Path

from featx._faults import crash_point
from featx.config import sha256_file
from featx.errors import CacheError, OptionError

HEAD_FORMAT = "featx-head"
HEAD_VERSION = 2  # 2: head.json carries a checksum of its own content
READABLE_VERSIONS = (1, 2)
META_FILE = "head.json"
ESTIMATOR_FILE = "estimator.skops"

_TYPES = {"head": str, "params": dict, "classes": list, "config": dict, "sources": dict, "split": dict,
          "metrics": dict, "estimator": dict, "views": dict}  # views: optional (heads of before views)
_REQUIRED = ("head", "params", "classes", "config", "sources", "fingerprint", "feature_dim", "split",
             "metrics", "fit_seconds", "cache", "featx_version", "created", "estimator")
_VALUES = {  # what each field must hold beyond its type, so a hand-edited head fails on load, not later
    "feature_dim": lambda v: isinstance(v, int) and not isinstance(v, bool) and v > 0,
    "fit_seconds": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "classes": lambda v: len(v) > 0 and all(isinstance(c, str) for c in v),
    "fingerprint": lambda v: isinstance(v, str),
    "featx_version": lambda v: isinstance(v, str),
    "created": lambda v: isinstance(v, str),
    "cache": lambda v: v is None or isinstance(v, str),
    "name": lambda v: v is None or isinstance(v, str),
}
_ASIDE = ".replaced-"  # a head being replaced waits at .<name>.replaced-<pid> until the new one is in


def is_head_folder(path: Path) -> bool:
    return (path / META_FILE).is_file()


def write_head_folder(path: Path, estimator: object, meta: dict) -> None:
    """Write ``estimator`` and ``meta`` to the folder ``path``, replacing a head saved there."""
    import skops.io

    recover_head_folder(path)
    if path.exists() and not is_head_folder(path):
        raise OptionError(f"{{param}}: {path} exists and is not a featx head folder; choose another folder.",
                          param="path")
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.parent / f".{path.name}.saving-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        skops.io.dump(estimator, staging / ESTIMATOR_FILE)
        meta = _plain({"format": HEAD_FORMAT, "version": HEAD_VERSION, **meta, "estimator": {
            "file": ESTIMATOR_FILE, "sha256": sha256_file(staging / ESTIMATOR_FILE)}})
        meta["checksum"] = content_checksum(meta)
        with open(staging / META_FILE, "w") as out:  # written as encoded: no copy of a million split ids in one str
            json.dump(meta, out, indent=1)
        _replace(staging, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _replace(staging: Path, path: Path) -> None:
    """Rename ``staging`` to ``path``; a head there is moved aside first and deleted last."""
    if not path.exists():
        staging.rename(path)
        return
    aside = path.parent / f".{path.name}{_ASIDE}{os.getpid()}"
    shutil.rmtree(aside, ignore_errors=True)
    path.rename(aside)
    crash_point("head-replace")
    try:
        staging.rename(path)
    except OSError:
        if not path.exists() and aside.exists():
            aside.rename(path)  # the old head stays
        raise
    crash_point("head-replace")
    shutil.rmtree(aside, ignore_errors=True)


def recover_head_folder(path: Path) -> None:
    """Finish a replace of the head at ``path`` that a killed process left half done: the old head
    moved aside comes back if no new head came in, and is deleted if one did."""
    prefix = f".{path.name}{_ASIDE}"
    for aside in map(Path, glob.glob(glob.escape(str(path.parent / prefix)) + "*")):
        if not aside.name[len(prefix):].isdigit():  # another head's, whose name goes on like this
            continue
        if is_head_folder(path):
            shutil.rmtree(aside, ignore_errors=True)
        elif not path.exists() and is_head_folder(aside):
            try:
                aside.rename(path)
            except OSError:  # another process put a head there meanwhile: the next call tidies up
                pass


def aside_targets(folder: Path) -> list[Path]:
    """The head folders in ``folder`` that a killed replace left moved aside."""
    found = [aside.name[1:].rpartition(_ASIDE) for aside in folder.glob(f".*{_ASIDE}*")]
    return [folder / name for name, _, pid in found if pid.isdigit()]


def _plain(meta: dict) -> dict:
    """``meta`` as JSON reads it back (NumPy numbers and paths as JSON values, through ``str``), the
    split's lists of id strings kept as they are (a copy of each would cost ~120 bytes an image)."""
    split = meta.get("split")
    ids = {k: v for k, v in split.items() if _strings(v)} if isinstance(split, dict) else {}
    kept = {**meta, "split": {k: v for k, v in split.items() if k not in ids}} if ids else meta
    plain = json.loads(json.dumps(kept, default=str))
    if ids:
        plain["split"] = {k: ids.get(k, plain["split"].get(k)) for k in split}
    return plain


def _strings(value) -> bool:
    return isinstance(value, list) and all(type(v) is str for v in value)


def content_checksum(meta: dict) -> str:
    """sha256 of ``meta``'s canonical JSON without its ``checksum`` field: how head.json pins itself
    (independent of indentation and key order, so only a change of content breaks it). Hashed as it
    is encoded, piece by piece: no string of the whole JSON."""
    body = {key: value for key, value in meta.items() if key != "checksum"}
    encoder = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=str)
    digest = hashlib.sha256()
    for piece in encoder.iterencode(body):
        digest.update(piece.encode())
    return digest.hexdigest()


def read_head_meta(path: Path, kinds: Iterable[str]) -> dict:
    """The checked contents of ``path/head.json``: this format and version, every field, a known kind."""
    try:
        meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CacheError(f"{path / META_FILE} is not a readable featx head file ({exc}).") from None
    except RecursionError:
        raise CacheError(f"{path / META_FILE} is not a readable featx head file (nested too deeply).") from None
    if not isinstance(meta, dict) or meta.get("format") != HEAD_FORMAT:
        raise CacheError(f"{path / META_FILE} is not a featx head file.")
    if meta.get("version") not in READABLE_VERSIONS:
        raise CacheError(
            f"{path} is a featx head of format version {meta.get('version')!r}; this featx reads versions "
            f"{READABLE_VERSIONS[0]} to {HEAD_VERSION}. Refit the head, or use the featx version that wrote it."
        )
    missing = [key for key in _REQUIRED + (("checksum",) if meta["version"] >= 2 else ()) if key not in meta]
    wrong = [key for key, kind in _TYPES.items() if key in meta and not isinstance(meta[key], kind)]
    wrong += [key for key, check in _VALUES.items() if key in meta and key not in wrong and not check(meta[key])]
    if missing or wrong or meta["head"] not in kinds:
        detail = (f"missing {', '.join(missing)}" if missing else f"bad {', '.join(wrong)}" if wrong
                  else f"unknown head kind {meta['head']!r}")
        raise CacheError(f"{path / META_FILE} is damaged ({detail}); not a readable featx head: refit it.")
    if "checksum" in meta and meta["checksum"] != content_checksum(meta):
        raise CacheError(f"{path / META_FILE} was modified after the head was saved (its checksum does not match); "
                         "refusing to load it. Put the saved file back, or refit the head.")
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

