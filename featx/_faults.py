"""Named crash points for fault-injection tests: ``FEATX_CRASH_AT=point[:n]`` kills the process
with SIGKILL the n-th time (default first) it reaches ``point``. Unset, it costs one dict lookup.
With ``FEATX_CRASH_ONCE=file`` only the first process to get there dies (it creates the file): a
worker that is restarted after the kill then runs through."""

from __future__ import annotations

import os
import signal
import threading

_hits: dict[str, int] = {}
_lock = threading.Lock()


def crash_point(name: str) -> None:
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
