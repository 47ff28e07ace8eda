"""One planned file into model input: decoded from the very bytes that were hashed, or why not."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from featx._faults import crash_point
from featx.backbones.hub_pipeline import load_model_input
from featx.data.images import DEFAULT_MAX_PIXELS
from featx.data.objectstore import read_bytes
from featx.errors import ImageDecodeError, os_reason

CHANGED = "changed during the run (rerun to embed it)"


class NotAsPlannedError(ImageDecodeError):
    """The file's bytes were not the planned ones when read to decode (changed, removed or
    unreadable since it was hashed): this says nothing about the planned content."""


def load_planned(path: Path | str, size: int, resize: str, max_pixels: int, sha256: bytes | None,
                 jpeg_draft: bool = False) -> np.ndarray | ImageDecodeError:
    """Model input for one planned file, or why not: with ``sha256``, decoded from the very bytes that
    hash to it (else a :class:`NotAsPlannedError`). Every engine and decoder decodes through here."""
    crash_point("decoding")
    source: Path | bytes = path
    if sha256 is not None:  # decode the very bytes whose hash is checked: never another content
        try:
            source = read_bytes(path)  # a local path or a URL
        except OSError as exc:
            return NotAsPlannedError(os_reason(exc))
        if hashlib.sha256(source).hexdigest().encode() != sha256:
            return NotAsPlannedError(CHANGED)
    try:
        return load_model_input(source, size, resize, max_pixels, jpeg_draft=jpeg_draft)
    except ImageDecodeError as exc:
        return exc


@dataclass(frozen=True)
class DecodeSpec:
    """How every file of a run becomes pixels: what the workers need besides the files."""

    size: int
    resize: str = "stretch"
    max_pixels: int = DEFAULT_MAX_PIXELS
    jpeg_draft: bool = False


def decode_chunk(array: np.ndarray, spec: DecodeSpec, slot: int, first: int, entries: list):
    """Decode ``entries`` ``[(path, sha256)]`` into rows ``first...`` of batch ``slot`` of ``array``;
    return ``(slot, first, outcomes)``, each outcome None or ``(not as planned?, reason)``."""
    outcomes: list[tuple[bool, str] | None] = []
    for row, (path, expected) in enumerate(entries, start=first):
        pixels = load_planned(path, spec.size, spec.resize, spec.max_pixels, expected, spec.jpeg_draft)
        if isinstance(pixels, ImageDecodeError):
            outcomes.append((isinstance(pixels, NotAsPlannedError), str(pixels)))
        else:
            array[slot, row] = pixels
            outcomes.append(None)
    return slot, first, outcomes
