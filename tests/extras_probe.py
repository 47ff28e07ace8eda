"""Which tests could run differently once the extras are installed: CI's second run of the suite.

CI runs the README's test command twice: as a newcomer (the test extra only), then with every extra.
Rerunning all of it the second time doubled CI's time for tests whose code never asked for an extra.
With ``FEATX_EXTRAS_PROBE=LOG`` set during the newcomer's run, every process (pytest's workers through
the conftest; their subprocesses through a ``.pth`` line CI adds to the newcomer's environment) records

- each test that *skipped* (``pytest.importorskip("jax")``, or anything else), and
- each lookup, from featx's or the tests' own code, of a top-level module that is not installed
  (``import onnx``, ``find_spec("faiss")``): the places where an extra changes the path taken. Lookups made inside third-party libraries (TensorFlow probing for JAX) are
  theirs, not featx's, and are not recorded.

``python3 tests/extras_probe.py pth`` prints that ``.pth`` line;
``python3 tests/extras_probe.py files LOG`` then prints the test files to run again with the extras
(run in their environment: a lookup counts if the module is there now), or ``tests`` (the whole suite)
if such a lookup could not be tied to a test (a subprocess started with an environment of its own).
Standard library only.
"""

from __future__ import annotations

import dis
import os
import sys
import threading
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OWN = tuple(str(ROOT / part) + os.sep for part in ("featx", "cli", "cache", "tests"))
ENV = "FEATX_EXTRAS_PROBE"
UNKNOWN = "?"  # a lookup outside any test: rerun everything


def current_test_file() -> str:
    """The test file running now (``PYTEST_CURRENT_TEST``, inherited by subprocesses), else ``?``."""
    running = os.environ.get("PYTEST_CURRENT_TEST", "")
    return running.split("::", 1)[0] if running else UNKNOWN


SKIPPED, MISSING = "skipped", "missing"  # what a log line says of its test file (MISSING: and which module)


def record(log: str, test_file: str, what: str, module: str = "") -> None:
    with open(log, "a", encoding="utf-8") as out:  # one short line per write: safe across processes
        out.write(f"{test_file}\t{what}\t{module}\n")


def _caller_is_ours() -> str | None:
    """The file of the code that asked for the module, if it is featx's or a test's: an ``import``
    statement there, or a call of importlib's (``find_spec``, ``import_module``). A library's C code
    importing while our frame calls it (pyarrow asking for pandas) is the library's."""
    frame, through_importlib = sys._getframe(2), False
    while frame is not None:
        name = frame.f_code.co_filename
        if not (name.startswith("<frozen") or name == __file__ or f"{os.sep}importlib{os.sep}" in name):
            break
        through_importlib |= (name.startswith("<frozen importlib.") and "_bootstrap" not in name  # util
                              or f"{os.sep}importlib{os.sep}" in name)  # import_module
        frame = frame.f_back
    if frame is None or not frame.f_code.co_filename.startswith(OWN):
        return None
    importing = frame.f_code.co_code[frame.f_lasti] == dis.opmap["IMPORT_NAME"]
    return frame.f_code.co_filename if importing or through_importlib else None


class MissingModuleProbe:
    """A ``sys.meta_path`` finder that finds nothing; it notes our lookups of modules no finder has
    (asking the other finders, probes aside: CI's own probe runs while the tests below test one)."""

    def __init__(self, log: str) -> None:
        self.log, self.busy, self.seen = log, threading.local(), set()

    def find_spec(self, name, path=None, target=None):
        if path is not None or getattr(self.busy, "on", False):
            return None  # submodules follow their package; a lookup of our own is not recorded
        caller = _caller_is_ours()
        if caller is None:
            return None
        self.busy.on = True
        try:
            found = any(finder.find_spec(name, None) is not None for finder in sys.meta_path
                        if type(finder).__name__ != type(self).__name__ and hasattr(finder, "find_spec"))
        finally:
            self.busy.on = False
        test_file = current_test_file()
        if test_file == UNKNOWN and caller.startswith(str(ROOT / "tests") + os.sep):
            test_file = os.path.relpath(caller, ROOT)  # a test module's own lookup at collection
        if not found and (test_file, name) not in self.seen:
            self.seen.add((test_file, name))
            record(self.log, test_file, MISSING, name)
        return None


def install() -> None:
    """Start recording in this process if ``FEATX_EXTRAS_PROBE`` names a log (once per process: by class name,
    as the ``.pth`` line loads this file apart from ``tests.extras_probe``)."""
    log = os.environ.get(ENV)
    if log and not any(type(finder).__name__ == "MissingModuleProbe" for finder in sys.meta_path):
        sys.meta_path.insert(0, MissingModuleProbe(log))


def files_to_rerun(log: Path, installed: Callable[[str], bool] = lambda name: find_spec(name) is not None,
                   tell: Callable[[str], None] = lambda line: None) -> list[str]:
    """The test files the log names, sorted: those of skipped tests and of lookups of a module that is
    ``installed`` now (run in the environment with every extra: a module still missing takes the same
    path again); ``["tests"]`` if such a lookup had no test, or if there is no log. ``tell`` hears why
    each file is rerun."""
    if not log.is_file():
        return ["tests"]
    why: dict[str, str] = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        test_file, what, module = (line.split("\t") + ["", ""])[:3]
        if what == SKIPPED or (what == MISSING and installed(module)):
            why.setdefault(test_file, "a test skipped" if what == SKIPPED else f"looked up {module}")
    if UNKNOWN in why:
        tell(f"a lookup outside any test ({why[UNKNOWN]}): the whole suite")
        return ["tests"]
    files = sorted(name for name in why if (ROOT / name).is_file())
    for name in files:
        tell(f"{name}: {why[name]}")
    return files


if __name__ == "featx_extras_probe":  # run by the .pth line CI adds: every Python process of the newcomer's venv
    install()
elif __name__ == "__main__" and sys.argv[1:2] == ["pth"]:
    print(f"import os, runpy; os.environ.get({ENV!r}) and runpy.run_path({str(Path(__file__).resolve())!r}, "
          f"run_name='featx_extras_probe')")
elif __name__ == "__main__" and sys.argv[1:2] == ["files"]:
    print(" ".join(files_to_rerun(Path(sys.argv[2]), tell=lambda line: print(line, file=sys.stderr))))
