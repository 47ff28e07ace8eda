"""The repository's own layout: nothing a script folder holds may hide a standard-library module."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_script_shadows_the_standard_library():
    # `python benchmarks/x.py` puts benchmarks/ first on sys.path: a benchmarks/inspect.py would
    # replace the standard library's inspect for numpy and everything else that script imports.
    for folder in ("benchmarks", "tests"):
        names = {path.stem for path in (ROOT / folder).rglob("*.py")}
        assert not names & set(sys.stdlib_module_names), folder
