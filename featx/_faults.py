"""Named crash points for fault-injection tests: ``FEATX_CRASH_AT=point[:n]`` kills the process
with SIGKILL the n-th time (default first) it reaches ``point``. Unset, it costs one dict lookup.
With ``FEATX_CRASH_ONCE=file`` only the first process to get there dies (it creates the file): a
worker that is restarted after the kill then runs through. ``HOOKS[point]`` (tests) is called each
time a point is reached, whichever module reaches it: a race staged at an exact moment."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable

_hits: dict[str, int] = {}
_lock = threading.Lock()
HOOKS: dict[str, Callable[[], None]] = {}  # point -> called on reaching it (tests stage races with it)


def crash_point(name: str) -> None:
    if HOOKS:
        hook = HOOKS.get(name)
        if hook is not None:
            hook()
    spec = os.environ.get("FEATX_CRASH_AT")
    if not spec:
        return
    point, _, count = spec.partition(":")
    if point != name:
        return
    with _lock:
        _hits[name] = _hits.get(name, 0) + 1
        if _hits[name] < int(count or 1):
            return
    once = os.environ.get("FEATX_CRASH_ONCE")
    if once:
        try:
            os.close(os.open(once, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return
    if hasattr(signal, "SIGKILL"):
        os.kill(os.getpid(), signal.SIGKILL)
    os._exit(137)
