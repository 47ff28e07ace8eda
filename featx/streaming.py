"""Decoding images in parallel, ahead of the backbone, in a bounded window.

Threads suffice: Pillow and NumPy release the GIL while they decode and resize, and TensorFlow
releases it while the backbone runs, so decoding the next batch overlaps computing this one. At most
``ahead`` images are in flight, so memory stays flat whatever the dataset size.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

import numpy as np

from featx.errors import ImageDecodeError
from featx._faults import crash_point
from featx.fileindex import os_reason
from featx.images import DEFAULT_MAX_PIXELS, load_image
from featx.objectstore import read_bytes

T = TypeVar("T")

CHANGED = "changed during the run (rerun to embed it)"


class NotAsPlannedError(ImageDecodeError):
    """The file's bytes were not the planned ones when read to decode (changed, removed or
    unreadable since it was hashed): this says nothing about the planned content."""


def load_planned(path: Path | str, size: int, resize: str, max_pixels: int,
                 sha256: bytes | None) -> np.ndarray | ImageDecodeError:
    """Model input for one planned file, or why not: with ``sha256``, decoded from the very bytes that
    hash to it (else a :class:`NotAsPlannedError`). Every engine decodes through here."""
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
        return load_image(source, (size, size), resize, max_pixels)
    except ImageDecodeError as exc:
        return exc


def decode_stream(
    items: Iterable[tuple[T, Path]],
    size: int,
    resize: str,
    workers: int,
    ahead: int,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    sha256: Callable[[T], bytes] | None = None,
) -> Iterator[tuple[T, np.ndarray | ImageDecodeError]]:
    """Yield ``(key, pixels or the decode error)`` for each ``(key, path)``, in input order.

    With ``sha256`` (the hex digest, as bytes, each key's file must have) a file is read once and
    decoded from those bytes only if they hash to it; else its error is a :class:`NotAsPlannedError`.
    """
    iterator = iter(items)
    pending: deque[tuple[T, Future]] = deque()
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="featx-decode") as pool:

        def submit_next() -> None:
            for key, path in iterator:
                expected = sha256(key) if sha256 else None
                pending.append((key, pool.submit(load_planned, path, size, resize, max_pixels, expected)))
                return

        for _ in range(max(1, ahead)):
            submit_next()
        while pending:
            key, future = pending.popleft()
            submit_next()
            yield key, future.result()


def batched_pixels(
    stream: Iterator[tuple[T, np.ndarray | ImageDecodeError]], batch_size: int, size: int
) -> Iterator[tuple[list[T], np.ndarray, list[tuple[T, ImageDecodeError]]]]:
    """Group decoded images into (keys, (n, size, size, 3) float32 batch, failures) of ``batch_size``."""
    keys: list[T] = []
    failures: list[tuple[T, ImageDecodeError]] = []
    buffer = np.empty((batch_size, size, size, 3), np.float32)
    for key, result in stream:
        if isinstance(result, ImageDecodeError):
            failures.append((key, result))
            continue
        buffer[len(keys)] = result
        keys.append(key)
        if len(keys) == batch_size:
            yield keys, buffer, failures
            keys, failures = [], []
            buffer = np.empty_like(buffer)
    if keys or failures:
        yield keys, buffer[: len(keys)], failures
